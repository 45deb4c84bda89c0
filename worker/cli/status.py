"""``invoice-sync status``: the counts once (a table or JSON), or ``--watch``'s live view
(``watch``, drawn by ``progress``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from worker.cli.pool import with_pool
from worker.cli.watch import watch
from worker.config import Settings
from worker.durations import parse_duration
from worker.errors import InputError
from worker.store.stats import gather_status, render_status


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print the counts by account and state, or watch them until Ctrl-C or drained."""
    if args.watch:
        return _watch(args, settings)
    if args.until_drained:
        raise InputError("status --until-drained only goes with --watch")
    status = asyncio.run(with_pool(settings, gather_status))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print(render_status(status))
    return 0


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    if args.json:
        raise InputError("status --watch draws a live view; --json is for a one-off status")
    try:
        interval = parse_duration(args.interval)
    except ValueError as exc:
        raise InputError(f"--interval: {exc}") from exc
    if interval <= 0:
        raise InputError("--interval must be more than zero")
    return asyncio.run(
        with_pool(
            settings,
            lambda pool: watch(
                pool, interval=interval, until_drained=args.until_drained, out=sys.stdout
            ),
        )
    )
