"""One JSON Lines record of ``invoice-sync enqueue`` (``{"account", "idempotency_key",
"payload"[, "available_at"][, "traceparent"]}``) as an outbox row, or ``BadLine`` saying what is
wrong with it.

A line is accepted only if PostgreSQL can store it and the engine will accept its payload, so a
bad line is reported by its number rather than failing its whole chunk's COPY. The block
pipeline (``worker.cli.enqueue_blocks``) calls ``parse_line`` for every line, in parser
processes; ``dlq replay --payload`` checks its payload with ``storable_payload``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from pydantic import ValidationError

from worker.invoice import (
    MAX_PAYLOAD_BYTES,
    UNSTORABLE,
    Invoice,
    describe_validation_error,
    parse_invoice,
    shown_key,
    storable_json,
)
from worker.store.staging import EnqueueRow
from worker.traceparent import traceparent_problem

Row = EnqueueRow
# A number in exponent form, which PostgreSQL writes out in full (1e+16: 17 digits).
EXPONENT = re.compile(r"\d[eE][-+]?\d")
# A line this long cannot hold a payload within the limit (escapes and spacing aside): it is
# refused before it is parsed, which would take many times its size in memory.
MAX_LINE_CHARS = 16 * MAX_PAYLOAD_BYTES


class BadLine(ValueError):  # noqa: N818 - a verdict on a line, caught by whoever reports it
    pass


def parse_line(text: str, accounts: frozenset[str] | None) -> Row:
    """One JSON Lines record as an outbox row; ``BadLine`` says what is wrong with it.

    A line is accepted only if PostgreSQL can store it and the engine will accept its payload:
    the payload is validated from the JSON text the outbox will hold, as the engine reads it.
    A usual line takes the fast path (``_usual_row``); any other, bad lines included, is read
    again by ``_checked_row``, which alone decides what is wrong and says so.
    """
    row = _usual_row(text, accounts)
    return row if row is not None else _checked_row(text, accounts)


LINE_KEYS = frozenset({"account", "idempotency_key", "payload", "available_at", "traceparent"})
# A payload this short as compact JSON is within the limit however PostgreSQL spaces it out
# (", " and ": " at most double it) and whatever json.dumps writes for its numbers.
USUAL_PAYLOAD_BYTES = MAX_PAYLOAD_BYTES // 4
EXPONENT_BYTES = re.compile(rb"\d[eE][-+]?\d")
# Every digit as 0 and E as e: a payload with no "0e" in that form has no exponent, found in a
# tenth of the time the expression takes to look (which runs only when one may be there); one
# search, not one for "0e" and one for "0E", is half the time again.
DIGITS_AS_ZERO_E_AS_LOWER = bytes.maketrans(b"123456789E", b"000000000e")
# Invoice.model_validate_json without its Python wrapper, which passes the same (default)
# options: 0.4-0.9 of its 6 µs for a small invoice.
_VALIDATE_INVOICE = Invoice.__pydantic_validator__.validate_json


def _usual_row(text: str, accounts: frozenset[str] | None) -> Row | None:
    """The row of a line ``_checked_row`` would accept, read with orjson (half the time a
    line), or None when the line is not plainly good, for ``_checked_row`` to read.

    orjson differs from the json module only where this returns None: it refuses NaN,
    Infinity, numbers out of a double's range, lone surrogates and a byte order mark (json
    reads them, and _checked_row refuses or reports them); it reads an integer outside 64 bits
    as a float, which it writes with an exponent (anything from 1e16 up), sent to
    _checked_row, which keeps the integer; it writes a NUL as \\u0000, sent there too; it
    refuses to write a payload nested over 254 levels.
    """
    try:
        return _read_usual(text, accounts)
    except (
        orjson.JSONDecodeError,
        orjson.JSONEncodeError,
        ValidationError,
        BadLine,
        _NotUsualError,
    ):
        return None


class _NotUsualError(Exception):
    """A line the fast path leaves to ``_checked_row``."""


def _usual(condition: bool) -> None:
    if not condition:
        raise _NotUsualError


def _read_usual(text: str, accounts: frozenset[str] | None) -> Row:
    _usual(len(text) <= MAX_LINE_CHARS)
    record = orjson.loads(text)
    _usual(type(record) is dict and record.keys() <= LINE_KEYS)
    account, key = record.get("account"), record.get("idempotency_key")
    _usual(type(account) is str and type(key) is str)
    assert isinstance(account, str)
    assert isinstance(key, str)
    _usual(1 <= len(account) <= 200 and 1 <= len(key) <= 200)
    _usual("\x00" not in account and "\x00" not in key)  # orjson's str: UTF-8, no surrogates
    _usual(accounts is None or account in accounts)
    body = orjson.dumps(record.get("payload"))
    _usual(len(body) <= USUAL_PAYLOAD_BYTES)
    _usual(b"\\u0000" not in body and not _has_exponent(body))
    _VALIDATE_INVOICE(body)
    available_at = _available_at(_str_or_none(record.get("available_at")))
    traceparent = _traceparent(_str_or_none(record.get("traceparent")))
    return account, key, body.decode(), available_at, traceparent


def _has_exponent(body: bytes) -> bool:
    if b"0e" not in body.translate(DIGITS_AS_ZERO_E_AS_LOWER):
        return False
    return EXPONENT_BYTES.search(body) is not None


def _str_or_none(value: object) -> str | None:
    _usual(value is None or type(value) is str)
    assert value is None or isinstance(value, str)
    return value


def _checked_row(text: str, accounts: frozenset[str] | None) -> Row:
    """``parse_line`` for any line: every check, in order, with the message of the first that
    fails."""
    record = _record(text)
    extra = set(record) - {"account", "idempotency_key", "payload", "available_at", "traceparent"}
    if extra:
        raise BadLine(f"unknown keys: {', '.join(sorted(shown_key(k) for k in extra))}")
    account, key = record.get("account"), record.get("idempotency_key")
    for name, value in (("account", account), ("idempotency_key", key)):
        if not isinstance(value, str) or not 1 <= len(value) <= 200:
            raise BadLine(f"{name}: expected a string of 1 to 200 characters")
        if not _storable(value):
            raise BadLine(
                f"{name}: contains a NUL character, bytes that are not UTF-8 or an "
                "unpaired surrogate"
            )
    assert isinstance(account, str)
    assert isinstance(key, str)
    if accounts is not None and account not in accounts:
        raise BadLine(f"account {account!r} is not configured")
    payload = _payload_text(record.get("payload"))
    try:
        parse_invoice(payload)
    except ValidationError as exc:
        raise BadLine(f"payload: {describe_validation_error(exc, limit=3)}") from exc
    available_at = _available_at(record.get("available_at"))
    return account, key, payload, available_at, _traceparent(record.get("traceparent"))


def storable_payload(text: str) -> str:
    """A payload given as JSON text (``dlq replay --payload``) as the outbox will hold it, or
    ``BadLine`` when PostgreSQL's jsonb could not hold it (NaN, 1e400, \\u0000), checked as an
    enqueued line's payload is. Whether it is an invoice is the caller's check."""
    return _payload_text(_loads(text))


def long_line(length: int, unit: str) -> str:
    """What is wrong with a line of ``length`` characters or bytes, over ``MAX_LINE_CHARS``."""
    return (
        f"{length} {unit}: far over the payload limit of {MAX_PAYLOAD_BYTES} bytes (256 KiB); "
        "not read"
    )


def _record(text: str) -> dict[str, object]:
    if len(text) > MAX_LINE_CHARS:
        raise BadLine(long_line(len(text), "characters"))
    record = _loads(text)
    if not isinstance(record, dict):
        raise BadLine("expected a JSON object")
    return record


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadLine(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadLine("not JSON we accept: nested too deeply") from exc


def _payload_text(payload: object) -> str:
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except RecursionError as exc:
        raise BadLine("payload: nested too deeply") from exc
    except ValueError as exc:  # NaN, Infinity, or a number too large for a float (1e400)
        raise BadLine(
            "payload: NaN, Infinity and numbers out of a double's range are not JSON"
        ) from exc
    if not storable_json(text):
        raise BadLine(f"payload: {UNSTORABLE}, which PostgreSQL cannot store")
    size = stored_bytes(payload, text)
    if size > MAX_PAYLOAD_BYTES:
        raise BadLine(
            f"payload: {size} bytes of JSON, over the limit of {MAX_PAYLOAD_BYTES} (256 KiB)"
        )
    return text


def stored_bytes(payload: object, text: str) -> int:
    """The size of ``text`` (``payload`` as JSON) once PostgreSQL holds it as jsonb and writes
    it out, which the outbox's constraint bounds: the same text, except that a number written
    with an exponent is written out in full."""
    size = len(text.encode("utf-8"))
    if EXPONENT.search(text):
        size += sum(_written_out_growth(number) for number in _floats(payload))
    return size


def _written_out_growth(number: float) -> int:
    written = repr(number)  # what json.dumps writes
    if "e" not in written:
        return 0
    return len(format(Decimal(written), "f")) - len(written)


def _floats(value: object) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)


def _storable(text: str) -> bool:
    """Valid UTF-8 without NUL: what PostgreSQL text and jsonb can hold. (Input that was not
    UTF-8 is read with ``surrogateescape``: its bad bytes are surrogates, refused here.)"""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _available_at(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise BadLine("available_at: expected an ISO 8601 timestamp") from exc
    if moment.tzinfo is None:
        raise BadLine("available_at: give a time zone (e.g. 2026-07-01T09:00:00Z)")
    try:
        # Stored as UTC: 9999-12-31T23:59:59-14:00 is past the last moment a datetime holds,
        # and would fail its whole chunk's COPY if found there.
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise BadLine("available_at: out of range once converted to UTC") from exc


def _traceparent(value: object) -> str | None:
    """The producer's trace context, checked as the outbox's constraint checks it (one bad
    value would otherwise fail its whole chunk's COPY). Null or absent: none."""
    if value is None:
        return None
    problem = traceparent_problem(value)
    if problem is not None:
        raise BadLine(f"traceparent: {problem}")
    assert isinstance(value, str)
    return value
