"""``invoice-sync show ACCOUNT KEY [--json]``: one invoice's whole story, as
``worker.store.story`` reads it: where it is now, what the provider calls it, every outbox row
a replay gave it, and every attempt with its outcome, timing, error and other requests.

An unknown key is an operator's mistake, as ``dlq show`` treats a missing id: one line on
standard error, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from worker.cli.pool import with_pool
from worker.cli.tables import format_table, format_time, printable
from worker.config import Settings
from worker.errors import InputError
from worker.store.story import AttemptRecord, InvoiceStory, invoice_story

ERROR_SHOWN = 70


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    story = asyncio.run(
        with_pool(settings, lambda pool: invoice_story(pool, args.account, args.key))
    )
    if story is None:
        raise InputError(f"no invoice with key {args.key!r} in account {args.account!r}")
    if args.json:
        print(json.dumps(asdict(story), indent=2, default=_json_default))
        return 0
    print(describe(story))
    return 0


def describe(story: InvoiceStory) -> str:
    """The story as a terminal shows it: a few lines about now, then a table of attempts."""
    lines = [
        f"{name + ':':<16}{printable(value)}" for name, value in _facts(story) if value is not None
    ]
    if story.attempts:
        header = ["#", "outbox", "started", "ms", "outcome", "http", "reason", "error", "calls"]
        rows = [_attempt_row(n, a) for n, a in enumerate(story.attempts, 1)]
        lines += ["", format_table(header, rows)]
    else:
        lines += ["", "no attempts recorded"]
    return "\n".join(lines)


def _facts(story: InvoiceStory) -> list[tuple[str, object]]:
    replays = " -> ".join(str(i) for i in story.history) if len(story.history) > 1 else None
    return [
        ("account", story.account),
        ("key", story.idempotency_key),
        ("state", f"{story.state} since {format_time(story.since)}"),
        ("outbox id", story.outbox_id),
        ("replays", replays),
        ("provider", story.provider),
        ("provider id", story.provider_invoice_id),
        ("number", story.invoice_number),
        ("link", story.link),
        ("pdf", story.pdf_url),
        ("recovered", "yes (found by a lookup)" if story.recovered else None),
        ("reason", story.reason),
        ("cancelled by", story.cancelled_by),
        ("error", story.error),
        ("next attempt", format_time(story.next_attempt_at) if story.next_attempt_at else None),
        ("attempts made", story.attempts_made),
    ]


def _attempt_row(number: int, attempt: AttemptRecord) -> list[str]:
    error = attempt.error or ""
    if len(error) > ERROR_SHOWN:
        error = error[: ERROR_SHOWN - 3] + "..."
    calls = ", ".join(
        f"{c.get('kind')} {c.get('http_status') or 'failed'} {c.get('duration_ms')}ms"
        for c in attempt.calls
    )
    outcome = attempt.outcome + (" (unknown)" if attempt.outcome_unknown else "")
    return [
        str(number),
        str(attempt.outbox_id),
        format_time(attempt.started_at),
        str(attempt.duration_ms),
        outcome,
        "-" if attempt.http_status is None else str(attempt.http_status),
        attempt.reason or "-",
        error or "-",
        calls or "-",
    ]


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
