"""``invoice-sync status``: the counts once (a table or JSON), or ``--watch``'s live view
(``watch``, drawn by ``progress``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from worker.cli.pool import with_pool
from worker.cli.tables import printable
from worker.cli.watch import watch
from worker.config import Settings
from worker.durations import parse_duration
from worker.errors import InputError
from worker.store.stats import gather_status


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


def render_status(status: dict[str, Any]) -> str:
    """The counts ``gather_status`` read, as the table ``status`` prints."""
    header = (
        "account",
        "pending",
        "running",
        "synced",
        "dead",
        "cancelled",
        "oldest",
        "rate/min",
        "state",
    )
    rows = [header]
    for name, item in status["accounts"].items():
        dead = sum(item["dead_letter"].values())
        age = item["oldest_pending_age_s"]
        paused = item["paused"]
        state = printable(f"paused: {paused['reason']}") if paused else "active"
        # Replicas announce only their accounts with rows: an account with none is idle, not
        # orphaned.
        if not paused and not item["configured"] and item["pending"] + item["running"]:
            state = "no replica"
        rows.append(
            (
                printable(name),
                str(item["pending"]),
                str(item["running"]),
                str(item["synced"]),
                str(dead),
                str(item["cancelled"]),
                "-" if age is None else f"{age:.0f}s",
                str(item["synced_last_minute"]),
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    reasons: dict[str, int] = {}
    for item in status["accounts"].values():
        for reason, count in item["dead_letter"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    if reasons:
        lines.append("")
        lines.append(
            "dead letters by reason: "
            + ", ".join(f"{r}={c}" for r, c in sorted(reasons.items(), key=lambda kv: -kv[1]))
        )
    unworked = status["unconfigured_pending"]
    if unworked:
        lines.append("")
        lines.append(
            f"{sum(unworked.values())} invoices wait for accounts no running replica is "
            "configured for: " + ", ".join(f"{printable(a)} ({n})" for a, n in unworked.items())
        )
    skipped = status["result_notifications_skipped"]
    if skipped:
        lines.append("")
        lines.append(
            f"{skipped} result notifications skipped: the notification queue was too full "
            "(a LISTEN session is not reading; see docs/producers.md)"
        )
    if len(rows) == 1:
        lines.append("(the outbox is empty and nothing has been synced yet)")
    return "\n".join(lines)
