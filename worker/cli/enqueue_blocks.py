"""The block pipeline of ``invoice-sync enqueue``: the input's lines, validated, loaded into the
outbox in chunks of one binary COPY each, in file order, with the bad lines reported by number.

A chunk that is committed stays committed, so a failure later in the file loses nothing before
it. Parser processes validate a few chunks ahead of the COPY: each gets a block of the input's
bytes and returns the chunk's COPY ready to send (``worker.store.staging``), so the loader does
no per-line work. Each line is read by ``worker.cli.enqueue_line``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from worker.cli.enqueue_line import MAX_LINE_CHARS, BadLine, Row, long_line, parse_line
from worker.errors import InputError
from worker.store.outbox import Outbox
from worker.store.staging import Staged, staged

# The input a transaction loads, in whole lines: each chunk pays for a staging table, a few
# round trips and a commit (10,000 lines took 0.9 µs a row less of PostgreSQL's CPU than 5,000
# over 1M lines; this is about 14,000 of the bench's lines). Bounded in bytes, so is memory.
CHUNK_BYTES = 4 * 1024 * 1024
# A line longer than this is over MAX_LINE_CHARS however it is written (UTF-8 takes at most four
# bytes a character, surrogateescape one a bad byte), so it is refused without being held.
MAX_LINE_BYTES = 4 * MAX_LINE_CHARS


@dataclass(kw_only=True)
class EnqueueReport:
    """What a load did: lines read (not blank), rows loaded, rows already in the outbox, and
    the bad lines by number with what is wrong with each."""

    lines: int = 0
    loaded: int = 0
    repeated: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line of ``size`` bytes, more than ``MAX_LINE_BYTES``: read past, never held."""

    size: int


Block = bytes | list[str] | LongLine
"""Lines of the input: bytes as read (the parser splits them as a text file would), lines
given one by one (``enqueue_lines``), or one line too long to hold."""


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
    if isinstance(block, LongLine):
        return Parsed(chunk=staged([]), read=1, lines=1, bad=[(1, long_line(block.size, "bytes"))])
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


def _blocks(stream: BinaryIO, newline: str | None) -> Iterator[bytes | LongLine]:
    """The input in blocks of whole lines, about ``CHUNK_BYTES`` each (a line longer than
    that makes its block longer), read as bytes: the loader does no per-line work, and a
    parser process gets a block as one cheap pickle. A line longer than ``MAX_LINE_BYTES`` is
    not kept: it is read past and given as a ``LongLine``, so memory stays bounded whatever
    the input, and the lines after it keep their numbers."""
    pending: list[bytes] = []  # the start of one line: no line end but perhaps a last \r
    size = 0
    carry = b""  # read past a long line's end: the next lines' start
    while data := carry or _read(stream):
        carry = b""
        if _ended_by_cr(pending, data, newline):
            yield b"".join(pending)
            pending, size = [], 0
        end = _after_last_line_end(data, newline)
        if end:
            yield b"".join([*pending, data[:end]])
            pending, size = [data[end:]], len(data) - end
            continue
        pending.append(data)
        size += len(data)
        cr = newline is None and data.endswith(b"\r")  # perhaps the line's end, not in it
        if size - cr > MAX_LINE_BYTES:
            skipped, carry = _rest_of_line(stream, newline, cr=cr)
            yield LongLine(size=size + skipped)
            pending, size = [], 0
    if rest := b"".join(pending):
        yield rest


def _ended_by_cr(pending: list[bytes], data: bytes, newline: str | None) -> bool:
    """Whether the ``\r`` that ``pending`` ends in ended its line (``data`` follows it)."""
    return (
        newline is None and bool(pending) and pending[-1].endswith(b"\r")
    ) and not data.startswith(b"\n")


def _rest_of_line(stream: BinaryIO, newline: str | None, *, cr: bool) -> tuple[int, bytes]:
    """Read on past the end of the line being read: how many more bytes it holds (its end not
    counted: less one for a ``\r`` read before, ``cr``), and the bytes read after its end."""
    skipped = 0
    while data := _read(stream):
        if cr:  # that \r ended the line, with the \n of a \r\n if one comes now
            return skipped - 1, data[1:] if data.startswith(b"\n") else data
        start, end = _first_line_end(data, newline)
        if end:
            return skipped + start, data[end:]
        skipped += len(data)
        cr = newline is None and data.endswith(b"\r")
    return skipped - cr, b""


def _first_line_end(data: bytes, newline: str | None) -> tuple[int, int]:
    """Where the first line end in ``data`` starts and ends ((0, 0): none does); a ``\r`` as
    the last byte does not count, as for ``_after_last_line_end``."""
    at = data.find(b"\n")
    if newline is None:
        cr = data.find(b"\r", 0, len(data) - 1)
        if cr != -1 and (at == -1 or cr < at):
            return cr, cr + (2 if data[cr + 1 : cr + 2] == b"\n" else 1)
    return (at, at + 1) if at != -1 else (0, 0)


def _read(stream: BinaryIO) -> bytes:
    try:
        return stream.read(CHUNK_BYTES)
    except OSError as exc:
        raise InputError(
            f"cannot read the input: {exc.strerror or exc}; lines before it may have "
            "loaded (enqueue again once it reads: lines already queued are skipped)"
        ) from exc


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
    # fork: the children need nothing but the parsing functions, already imported; the
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
