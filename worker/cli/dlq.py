"""``invoice-sync dlq list|show|replay|purge``: the operator's view of the dead letters.

Each subcommand (its arguments are in ``worker.cli.arguments``) validates its flags (one readable line and exit 2 for a mistake), then calls
``worker.store.dead_letters``. ``replay`` exits 1 when some dead letters were refused, like
``enqueue`` with bad lines, so a script notices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from worker.cli.enqueue_line import BadLine, storable_payload
from worker.cli.pool import with_pool
from worker.cli.tables import format_table, format_time, printable
from worker.config import Settings
from worker.durations import parse_duration
from worker.errors import InputError
from worker.invoice import describe_validation_error, parse_invoice
from worker.outcome import Reason
from worker.store.audit import AuditEntry, cli_actor
from worker.store.dead_letters import REFUSALS, DeadLetterFilter, DeadLetterStore, ReplayResult

T = TypeVar("T")


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    selection = _filter(args, limit=_positive_int("--limit", args.limit))
    rows = _run(settings, lambda store: store.dead_letter_list(selection))
    if args.json:
        _print_json([asdict(row) for row in rows])
        return 0
    header = ["account", "id", "key", "reason", "http", "attempts", "dead_at", "error"]
    if args.include_replayed:
        header.append("replayed_to")
    table = [
        [
            row.account,
            str(row.id),
            row.idempotency_key,
            row.reason,
            _text(row.http_status),
            str(row.attempts),
            format_time(row.dead_at),
            _short(row.error),
            *([_text(row.replayed_to)] if args.include_replayed else []),
        ]
        for row in rows
    ]
    print(format_table(header, table) if table else "no dead letters match")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    dead_letter_id = _positive_int("id", args.id)
    row = _run(settings, lambda store: store.dead_letter_show(dead_letter_id))
    if row is None:
        raise InputError(f"no dead letter with id {dead_letter_id}")
    if args.json:
        _print_json(asdict(row))
        return 0
    fields = [
        ("id", row.id),
        ("account", row.account),
        ("key", row.idempotency_key),
        ("reason", row.reason),
        ("http status", _text(row.http_status)),
        ("attempts", row.attempts),
        ("first attempt", format_time(row.first_attempt_at)),
        ("dead at", format_time(row.dead_at)),
        (
            "replayed",
            f"{format_time(row.replayed_at)} as outbox row {row.replayed_to}"
            if row.replayed_at
            else "no",
        ),
    ]
    for name, value in fields:
        print(f"{name + ':':<15}{printable(value)}")
    error = printable(row.error, lines=True).replace("\n", "\n  ")
    print(f"error:\n  {error}")
    print(f"provider response:\n{_indented_json(row.response)}")
    print(f"payload:\n{_indented_json(row.payload)}")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    ids = [_positive_int("id", value) for value in args.ids]
    filtered = any(v is not None for v in (args.reason, args.account, args.since))
    if ids and (filtered or args.all):
        raise InputError(
            "dlq replay: give ids or filters (--reason, --account, --since, --all), not both"
        )
    if not ids and not filtered and not args.all:
        raise InputError(
            "dlq replay: name ids or filters; --all replays every dead letter not yet replayed"
        )
    payload = _corrected_payload(args.payload, ids) if args.payload else None
    selection = None if ids else _filter(args, limit=None)

    async def replay(store: DeadLetterStore) -> list[ReplayResult]:
        chosen = (
            ids if selection is None else [r.id for r in await store.dead_letter_list(selection)]
        )
        audit = AuditEntry(actor=cli_actor(), action="replay", target={}, rows=0, reason=args.note)
        return await store.dead_letter_replay(
            chosen, payload=payload, dry_run=args.dry_run, audit=audit
        )

    results = _run(settings, replay)
    _print_replay(results, dry_run=args.dry_run)
    return 1 if any(r.refused for r in results) else 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    older_than = _duration("--older-than", args.older_than)
    reason = _reason(args.reason)
    counts = _run(
        settings,
        lambda store: store.dead_letter_purge(
            older_than,
            reason=reason,
            account=args.account,
            dry_run=args.dry_run,
            audit=AuditEntry(
                actor=cli_actor(),
                action="purge",
                target={"older_than": args.older_than, "reason": reason, "account": args.account},
                rows=0,
                reason=args.note,
            ),
        ),
    )
    total = sum(c.count for c in counts)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {total} dead letter{'s' * (total != 1)} older than {args.older_than}")
    for count in counts:
        print(f"  {printable(count.account)}  {count.reason}  {count.count}")
    return 0


def _print_replay(results: list[ReplayResult], *, dry_run: bool) -> None:
    done = [r for r in results if r.refused is None]
    refused = [r for r in results if r.refused is not None]
    for r in done:
        verb = "would replay" if dry_run else "replayed"
        print(f"{verb} {r.id} ({_where(r)}) as outbox row {r.replayed_to}")
    for r in refused:
        where = f" ({_where(r)})" if r.account else ""
        print(f"refused {r.id}{where}: {REFUSALS[r.refused or '']}")
    why: dict[str, int] = {}
    for r in refused:
        why[REFUSALS[r.refused or ""]] = why.get(REFUSALS[r.refused or ""], 0) + 1
    reasons = "".join(f"; {count} {text}" for text, count in why.items())
    print(f"{'dry run: ' if dry_run else ''}replayed {len(done)}, refused {len(refused)}{reasons}")


def _where(result: ReplayResult) -> str:
    return printable(f"{result.account}/{result.idempotency_key}")


def _corrected_payload(path: str, ids: list[int]) -> str:
    if len(ids) != 1:
        raise InputError("dlq replay --payload: give exactly one dead letter id")
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 (byte {exc.start})") from exc
    try:
        parse_invoice(text)
    except ValidationError as exc:
        raise InputError(
            f"{path} is not a valid invoice: {describe_validation_error(exc)}"
        ) from exc
    try:
        return storable_payload(text)
    except BadLine as exc:  # what PostgreSQL's jsonb cannot hold: checked here, not at replay
        raise InputError(f"{path}: {str(exc).removeprefix('payload: ')}") from exc


def _filter(args: argparse.Namespace, *, limit: int | None) -> DeadLetterFilter:
    return DeadLetterFilter(
        reason=_reason(args.reason),
        account=args.account,
        since=_since(args.since) if args.since else None,
        include_replayed=getattr(args, "include_replayed", False),
        limit=limit,
    )


def _reason(value: str | None) -> str | None:
    if value is not None and value not in set(Reason):
        raise InputError(f"--reason {value!r} is not a reason code; known: {', '.join(Reason)}")
    return value


def _since(value: str) -> datetime:
    try:
        seconds = parse_duration(value)
    except ValueError:
        pass
    else:
        return _ago("--since", value, seconds)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--since {value!r} is neither a duration such as '2h' nor an ISO timestamp"
        ) from None
    try:  # in UTC, as the database holds it: 9999-12-31T23:00-01:00 is past the year 9999
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise InputError(f"--since {value!r} is out of the range of timestamps") from None


def _duration(flag: str, value: str) -> float:
    """A duration ago, in seconds, no further back than a timestamp can go."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from exc
    _ago(flag, value, seconds)
    return seconds


def _ago(flag: str, value: str, seconds: float) -> datetime:
    """The moment ``seconds`` before now; ``InputError`` when it is before the year 1, which
    neither Python nor the database's timestamps can hold."""
    try:
        return datetime.now(UTC) - timedelta(seconds=seconds)
    except OverflowError:
        raise InputError(f"{flag} {value!r} reaches back before the year 1") from None


def _positive_int(name: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1 or int(value) >= 2**63:
        raise InputError(f"{name} {value!r} is not a positive whole number")
    return int(value)


def _short(error: str, width: int = 60) -> str:
    line = error.splitlines()[0] if error else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _indented_json(value: Any) -> str:
    if value is None:
        return "  (none)"
    # JSON escapes C0 in strings, not C1 (ensure_ascii=False keeps them): printable does.
    text = printable(json.dumps(value, indent=2, ensure_ascii=False), lines=True)
    return "\n".join("  " + line for line in text.splitlines())


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _run(settings: Settings, action: Callable[[DeadLetterStore], Awaitable[T]]) -> T:
    return asyncio.run(with_pool(settings, lambda pool: action(DeadLetterStore(pool))))
