"""``invoice-sync run``: the worker daemon (``worker.engine``)."""

from __future__ import annotations

import argparse
import asyncio

from worker.config import Settings
from worker.engine.daemon import run_worker


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the daemon until a signal stops it (or, with ``--drain``, until nothing is left)."""
    asyncio.run(run_worker(settings, drain=args.drain))
    return 0
