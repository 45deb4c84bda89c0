"""``invoice-sync run``: the worker daemon (``worker.engine``)."""

from __future__ import annotations

import argparse
import asyncio

from worker.config import Settings
from worker.engine.daemon import run_worker
from worker.errors import InputError


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the daemon until a signal stops it (or, with ``--drain``, until nothing is left)."""
    if not settings.accounts:
        raise InputError("no [accounts.NAME] configured: nothing to run")
    asyncio.run(run_worker(settings, drain=args.drain))
    return 0
