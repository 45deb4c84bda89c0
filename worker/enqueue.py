"""Bulk enqueue of JSON Lines ``{"account", "idempotency_key", "payload"[, "available_at"]}``.

Every line is validated (the payload against the canonical invoice) before anything is written;
bad lines are reported by line number and the good ones are loaded in chunks of one COPY each.
A chunk that is committed stays committed, so a failure later in the file loses nothing before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from worker.invoice import describe_validation_error, parse_invoice
from worker.outbox import Outbox

CHUNK = 5000
# A JSON \u0000 escape (not an escaped backslash followed by "u0000"): PostgreSQL's jsonb and
# text cannot hold NUL, and one such line would otherwise fail its whole chunk.
NUL_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
Row = tuple[str, str, str, datetime | None]


@dataclass(kw_only=True)
class EnqueueReport:
    lines: int = 0
    loaded: int = 0
    repeated: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


class BadLine(ValueError):  # noqa: N818 - a value, not raised past this module
    pass


def parse_line(text: str, accounts: frozenset[str] | None) -> Row:
    """One JSON Lines record as an outbox row; ``BadLine`` says what is wrong with it.

    A line is accepted only if PostgreSQL can store it and the engine will accept its payload:
    the payload is validated from the JSON text the outbox will hold, as the engine reads it.
    """
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise BadLine(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadLine("not JSON we accept: nested too deeply") from exc
    if not isinstance(record, dict):
        raise BadLine("expected a JSON object")
    extra = set(record) - {"account", "idempotency_key", "payload", "available_at"}
    if extra:
        raise BadLine(f"unknown keys: {', '.join(sorted(_shown(k) for k in extra))}")
    account, key = record.get("account"), record.get("idempotency_key")
    for name, value in (("account", account), ("idempotency_key", key)):
        if not isinstance(value, str) or not 1 <= len(value) <= 200:
            raise BadLine(f"{name}: expected a string of 1 to 200 characters")
        if not _storable(value):
            raise BadLine(f"{name}: contains a NUL character or an unpaired surrogate")
    assert isinstance(account, str)
    assert isinstance(key, str)
    if accounts is not None and account not in accounts:
        raise BadLine(f"account {account!r} is not configured")
    payload = _payload_text(record.get("payload"))
    try:
        parse_invoice(payload)
    except ValidationError as exc:
        raise BadLine(f"payload: {describe_validation_error(exc, limit=3)}") from exc
    return account, key, payload, _available_at(record.get("available_at"))


def _payload_text(payload: object) -> str:
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except RecursionError as exc:
        raise BadLine("payload: nested too deeply") from exc
    except ValueError as exc:  # NaN, Infinity, or a number too large for a float (1e400)
        raise BadLine(
            "payload: NaN, Infinity and numbers out of a double's range are not JSON"
        ) from exc
    # The substring test first: the regular expression costs more than the rest of the line.
    if not _storable(text) or ("\\u0000" in text and NUL_ESCAPE.search(text)):
        raise BadLine(
            "payload: contains a NUL character (\\u0000) or an unpaired surrogate, "
            "which PostgreSQL cannot store"
        )
    return text


def _storable(text: str) -> bool:
    """Valid UTF-8 without NUL: what PostgreSQL text and jsonb can hold."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(key: str) -> str:
    return key if len(key) <= 40 and key.isprintable() else repr(key[:40])


def _available_at(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise BadLine("available_at: expected an ISO 8601 timestamp") from exc
    if moment.tzinfo is None:
        raise BadLine("available_at: give a time zone (e.g. 2026-07-01T09:00:00Z)")
    return moment


async def enqueue_lines(
    lines: Iterable[str], outbox: Outbox, *, accounts: frozenset[str] | None
) -> EnqueueReport:
    report = EnqueueReport()
    for chunk in _chunks(_parsed(lines, accounts, report)):
        inserted = await outbox.enqueue_many(chunk)
        report.loaded += inserted
        report.repeated += len(chunk) - inserted
    return report


def _parsed(
    lines: Iterable[str], accounts: frozenset[str] | None, report: EnqueueReport
) -> Iterator[Row]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        report.lines += 1
        try:
            yield parse_line(text, accounts)
        except BadLine as exc:
            report.bad.append((number, str(exc)))


def _chunks(rows: Iterator[Row]) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
