"""``enqueue`` hands its parsers blocks of the input's bytes; read block by block, the lines are
those a text file gives (the same text, the same line ends, so the same numbers), wherever the
blocks are cut, for a file (``\\n``, ``\\r\\n`` and ``\\r`` end a line) and for standard input
(``\\n`` only)."""

from __future__ import annotations

import errno
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.cli import enqueue_blocks
from worker.cli.enqueue_blocks import _blocks
from worker.errors import InputError

PIECES = st.sampled_from([b"\n", b"\r", b"\r\n", b" ", b"{}", b"x", "é".encode(), b"\xff"])


def read_as_text(data: bytes, newline: str | None) -> list[str]:
    return list(io.TextIOWrapper(io.BytesIO(data), "utf-8", "surrogateescape", newline))


def read_by_blocks(data: bytes, newline: str | None) -> list[str]:
    lines: list[str] = []
    for block in _blocks(io.BytesIO(data), newline):
        assert isinstance(block, bytes)
        lines += io.StringIO(block.decode("utf-8", "surrogateescape"), newline=newline)
    return lines


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=40),
    size=st.integers(min_value=1, max_value=9),
    newline=st.sampled_from([None, "\n"]),
)
def test_blocks_hold_the_lines_a_text_file_gives(
    pieces: list[bytes], size: int, newline: str | None
) -> None:
    data = b"".join(pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(enqueue_blocks, "CHUNK_BYTES", size)
        assert read_by_blocks(data, newline) == read_as_text(data, newline)


def test_a_block_ends_at_a_line_end_and_a_long_line_is_kept_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(enqueue_blocks, "CHUNK_BYTES", 4)
    data = b"ab\ncdefghij\r\nk\r"
    assert list(_blocks(io.BytesIO(data), None)) == [b"ab\n", b"cdefghij\r\n", b"k\r"]


LONG = 6  # MAX_LINE_BYTES in the tests below


def read_by_blocks_marking_long_lines(data: bytes, newline: str | None) -> list[str | int]:
    """``read_by_blocks``, a line given as a ``LongLine`` as its size."""
    found: list[str | int] = []
    for block in _blocks(io.BytesIO(data), newline):
        if isinstance(block, enqueue_blocks.LongLine):
            found.append(block.size)
            continue
        assert isinstance(block, bytes)
        text = block.decode("utf-8", "surrogateescape")
        found += io.StringIO(text, newline=newline)
    return found


def content_bytes(line: str) -> int:
    """The bytes of a line as read from a text file, without its line end."""
    return len(line.removesuffix("\n").encode("utf-8", "surrogateescape"))


@settings(max_examples=500, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=60),
    size=st.integers(min_value=1, max_value=5),
    newline=st.sampled_from([None, "\n"]),
)
def test_a_long_line_is_skipped_whole_and_the_others_keep_their_place(
    pieces: list[bytes], size: int, newline: str | None
) -> None:
    """Where the blocks are cut, a line over ``MAX_LINE_BYTES`` that is read past stands in
    its place as its size in bytes; every other line is the line a text file gives."""
    data = b"".join(pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(enqueue_blocks, "CHUNK_BYTES", size)
        patch.setattr(enqueue_blocks, "MAX_LINE_BYTES", LONG)
        found = read_by_blocks_marking_long_lines(data, newline)
    expected = read_as_text(data, newline)
    assert len(found) == len(expected), (found, expected)
    for got, line in zip(found, expected, strict=True):
        if isinstance(got, int):
            assert got == content_bytes(line) > LONG, (found, expected)
        else:
            assert got == line


def test_a_long_line_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_blocks, "CHUNK_BYTES", 4)
    monkeypatch.setattr(enqueue_blocks, "MAX_LINE_BYTES", LONG)
    data = b"ab\n" + b"x" * 40 + b"\r\ncd\n"
    assert list(_blocks(io.BytesIO(data), None)) == [
        b"ab\n",
        enqueue_blocks.LongLine(size=40),
        b"cd\n",
    ]


class Unreadable(io.RawIOBase):
    """A file that opens but cannot be read, as ``/proc/self/mem``."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError(errno.EIO, "Input/output error")


def test_a_read_that_fails_is_an_input_error_saying_why() -> None:
    with pytest.raises(InputError, match="cannot read the input: Input/output error"):
        next(_blocks(io.BufferedReader(Unreadable()), None))
