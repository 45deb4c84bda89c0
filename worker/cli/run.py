"""``invoice-sync run``: the worker daemon (``worker.engine``)."""

from __future__ import annotations

import argparse
import asyncio
import gc

from worker.config import Settings
from worker.engine.daemon import run_worker


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the daemon until a signal stops it (or, with ``--drain``, until nothing is left)."""
    # The settings (every account's: thousands on a platform) and the modules live as long as
    # the process. Frozen, a full collection no longer walks them each time the runtimes that
    # accounts open and close have piled up; what is frozen is still freed by its refcount.
    gc.freeze()
    asyncio.run(run_worker(settings, drain=args.drain))
    return 0
