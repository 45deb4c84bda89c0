"""``invoice-sync console``: the web console (``worker.console``), in its own process so the
daemon stays small."""

from __future__ import annotations

import argparse
import asyncio

from worker.config import Settings
from worker.console.serve import serve_console


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the console until Ctrl-C or SIGTERM; print its address once it listens."""

    def started(address: str) -> None:
        mode = "admin login enabled" if settings.console.admin_token_file else "read-only"
        print(f"console at {address} ({mode}); Ctrl-C stops it", flush=True)

    asyncio.run(serve_console(settings, started=started))
    return 0
