"""Bulk enqueue of JSON Lines ``{"account", "idempotency_key", "payload"[, "available_at"]
[, "traceparent"]}``.

Every line is validated (the payload against the canonical invoice) before it is written; bad
lines are reported by line number and the good ones are loaded in chunks of one COPY each, in
file order. A chunk that is committed stays committed, so a failure later in the file loses
nothing before it. ``invoice-sync enqueue`` (``cmd_enqueue``) validates in parser processes, a
few chunks ahead of the COPY: each gets a block of the input's bytes and returns the chunk's
COPY ready to send (``worker.store.staging``), so the loader does no per-line work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import multiprocessing
import os
import re
import sys
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import orjson
from pydantic import ValidationError

from worker.cli.pool import with_pool
from worker.config import Settings
from worker.errors import InputError
from worker.invoice import (
    MAX_PAYLOAD_BYTES,
    UNSTORABLE,
    Invoice,
    describe_validation_error,
    parse_invoice,
    shown_key,
    storable_json,
)
from worker.store.database import Pool
from worker.store.outbox import Outbox
from worker.store.staging import EnqueueRow, Staged, staged
from worker.traceparent import traceparent_problem

# The input a transaction loads, in whole lines: each chunk pays for a staging table, a few
# round trips and a commit (10,000 lines took 0.9 µs a row less of PostgreSQL's CPU than 5,000
# over 1M lines; this is about 14,000 of the bench's lines). Bounded in bytes, so is memory.
CHUNK_BYTES = 4 * 1024 * 1024
# More parser processes than this only queue up behind the COPY.
MAX_ENQUEUE_PARSERS = 4
Row = EnqueueRow
# A number in exponent form, which PostgreSQL writes out in full (1e+16: 17 digits).
EXPONENT = re.compile(r"\d[eE][-+]?\d")
# A line this long cannot hold a payload within the limit (escapes and spacing aside): it is
# refused before it is parsed, which would take many times its size in memory.
MAX_LINE_CHARS = 16 * MAX_PAYLOAD_BYTES


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


def _record(text: str) -> dict[str, object]:
    if len(text) > MAX_LINE_CHARS:
        raise BadLine(
            f"{len(text)} characters: far over the payload limit of {MAX_PAYLOAD_BYTES} bytes "
            "(256 KiB); not read"
        )
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


Block = bytes | list[str]
"""Lines of the input: bytes as read (the parser splits them as a text file would), or lines
given one by one (``enqueue_lines``)."""


async def enqueue_stream(
    stream: BinaryIO,
    outbox: Outbox,
    *,
    accounts: frozenset[str] | None,
    parsers: int = 0,
    newline: str | None = None,
) -> EnqueueReport:
    """Validate and load the lines of ``stream`` (UTF-8; ``newline`` as ``open()`` takes it:
    None ends a line at ``\\n``, ``\\r\\n`` or ``\\r``, ``"\\n"`` at ``\\n`` only). With
    ``parsers`` > 0, blocks of lines are validated in that many processes while the previous
    block is being copied in (validation is most of the work, and the COPY otherwise waits for
    it); blocks are still loaded in file order."""
    blocks = _blocks(stream, newline)
    return await _load(blocks, outbox, accounts=accounts, parsers=parsers, newline=newline)


async def enqueue_lines(
    lines: Iterable[str],
    outbox: Outbox,
    *,
    accounts: frozenset[str] | None,
    parsers: int = 0,
) -> EnqueueReport:
    """``enqueue_stream`` for lines given one by one: each is one line, whatever it holds."""
    blocks = _line_blocks(lines)
    return await _load(blocks, outbox, accounts=accounts, parsers=parsers, newline=None)


async def _load(
    blocks: Iterable[Block],
    outbox: Outbox,
    *,
    accounts: frozenset[str] | None,
    parsers: int,
    newline: str | None,
) -> EnqueueReport:
    report = EnqueueReport()
    if parsers <= 0:
        parsed_blocks: AsyncGenerator[Parsed, None] = _parsed_here(blocks, accounts, newline)
    else:
        parsed_blocks = _parsed_elsewhere(blocks, accounts, newline, parsers)
    earlier = 0  # lines in the blocks before this one, blank ones included
    async with contextlib.aclosing(parsed_blocks):  # a failed COPY stops the parsers at once
        async for parsed in parsed_blocks:
            report.lines += parsed.lines
            report.bad += [(earlier + number, message) for number, message in parsed.bad]
            earlier += parsed.read
            if parsed.chunk.rows:
                inserted = await outbox.enqueue_staged(parsed.chunk)
                report.loaded += inserted
                report.repeated += parsed.chunk.rows - inserted
    return report


@dataclass(kw_only=True, slots=True)
class Parsed:
    """One block of the input, validated: its good rows as a chunk to load, its bad lines
    numbered from 1 at the block's first line."""

    chunk: Staged
    read: int
    """Lines in the block, blank ones included."""
    lines: int
    """Lines that were not blank."""
    bad: list[tuple[int, str]] = field(default_factory=list)


def parse_block(block: Block, accounts: frozenset[str] | None, newline: str | None) -> Parsed:
    """Validate one block of whole lines and write its good rows as the chunk's COPY; runs in
    a parser process or in this one. Bytes are read as a text file reads them (UTF-8 with
    ``surrogateescape``, the same line ends), so each line is the text it was before."""
    if isinstance(block, bytes):
        texts: Iterable[str] = io.StringIO(
            block.decode("utf-8", "surrogateescape"), newline=newline
        )
    else:
        texts = block
    rows: list[Row] = []
    bad: list[tuple[int, str]] = []
    read = lines = 0
    for read, text in enumerate(texts, start=1):
        if not text.strip():
            continue
        lines += 1
        try:
            rows.append(parse_line(text, accounts))
        except BadLine as exc:
            bad.append((read, str(exc)))
    return Parsed(chunk=staged(rows), read=read, lines=lines, bad=bad)


def _line_blocks(lines: Iterable[str]) -> Iterator[list[str]]:
    """Given lines in blocks of about ``CHUNK_BYTES`` characters."""
    block: list[str] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line) + 1
        if size >= CHUNK_BYTES:
            yield block
            block, size = [], 0
    if block:
        yield block


def _blocks(stream: BinaryIO, newline: str | None) -> Iterator[bytes]:
    """The input in blocks of whole lines, about ``CHUNK_BYTES`` each (a line longer than
    that makes its block longer), read as bytes: the loader does no per-line work, and a
    parser process gets a block as one cheap pickle."""
    pending: list[bytes] = []
    while data := stream.read(CHUNK_BYTES):
        end = _after_last_line_end(data, newline)
        if end == 0:  # inside a long line
            pending.append(data)
            continue
        yield b"".join([*pending, data[:end]])
        pending = [data[end:]]
    if rest := b"".join(pending):
        yield rest


def _after_last_line_end(data: bytes, newline: str | None) -> int:
    """Where the last line that ends in ``data`` ends (0: none does). A ``\\r`` as the last
    byte does not count: the ``\\n`` of a ``\\r\\n`` may be the next read's first byte."""
    end = data.rfind(b"\n") + 1
    if newline is None:
        end = max(end, data.rfind(b"\r", 0, len(data) - 1) + 1)
    return end


async def _parsed_here(
    blocks: Iterable[Block], accounts: frozenset[str] | None, newline: str | None
) -> AsyncGenerator[Parsed, None]:
    for block in blocks:
        yield parse_block(block, accounts, newline)


async def _parsed_elsewhere(
    blocks: Iterable[Block], accounts: frozenset[str] | None, newline: str | None, parsers: int
) -> AsyncGenerator[Parsed, None]:
    """Blocks validated by a pool of ``parsers`` processes, a few blocks ahead of the COPY (so
    memory stays bounded however long the file), yielded in file order."""
    loop = asyncio.get_running_loop()
    # fork: the children need nothing but this module's functions, already imported; the
    # other start methods would import the CLI again in each (a second or more).
    context = multiprocessing.get_context("fork")
    ahead: deque[asyncio.Future[Parsed]] = deque()
    with ProcessPoolExecutor(max_workers=parsers, mp_context=context) as pool:
        for block in blocks:
            ahead.append(loop.run_in_executor(pool, parse_block, block, accounts, newline))
            if len(ahead) > parsers * 2:
                yield await ahead.popleft()
        while ahead:
            yield await ahead.popleft()


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    """Load ``args.file`` (``-``: standard input); exit 1 if any line was bad."""
    accounts = frozenset(settings.accounts) if settings.accounts else None
    # Validation is CPU-bound: one parser process per core, the COPY in this one.
    parsers = min(os.cpu_count() or 1, MAX_ENQUEUE_PARSERS)

    source, newline = _input(args.file)

    async def load(pool: Pool) -> EnqueueReport:
        # The load claims nothing, so it needs no lease owner of the daemon's form (which
        # would import the engine, a fifth of a second of the command's start-up).
        outbox = Outbox(pool, worker_id="enqueue")
        return await enqueue_stream(
            stream, outbox, accounts=accounts, parsers=parsers, newline=newline
        )

    with source as stream:
        report = asyncio.run(with_pool(settings, load))
    for number, message in report.bad[:100]:
        print(f"line {number}: {message}", file=sys.stderr)
    if len(report.bad) > 100:
        print(f"... and {len(report.bad) - 100} more bad lines", file=sys.stderr)
    print(
        f"read {report.lines} lines: loaded {report.loaded}, already queued, synced or cancelled "
        f"{report.repeated}, bad {len(report.bad)}"
    )
    return 1 if report.bad else 0


def _input(file: str) -> tuple[contextlib.AbstractContextManager[BinaryIO], str | None]:
    """``enqueue``'s input as bytes, and where its lines end as Python would read it as text:
    standard input for ``-`` (left open; lines end at ``\\n``), else the file (at ``\\n``,
    ``\\r\\n`` or ``\\r``). Both are then read as UTF-8 with ``surrogateescape``, whatever the
    locale: a line holding bytes that are not UTF-8 is one bad line, reported by number, not a
    traceback that loses the rest."""
    if file == "-":
        return contextlib.nullcontext(sys.stdin.buffer), "\n"
    try:
        return Path(file).open("rb"), None
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from exc
