"""``enqueue`` hands its parsers blocks of the input's bytes; read block by block, the lines are
those a text file gives (the same text, the same line ends, so the same numbers), wherever the
blocks are cut, for a file (``\\n``, ``\\r\\n`` and ``\\r`` end a line) and for standard input
(``\\n`` only)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.cli import enqueue_blocks
from worker.cli.enqueue_blocks import _blocks

PIECES = st.sampled_from([b"\n", b"\r", b"\r\n", b" ", b"{}", b"x", "é".encode(), b"\xff"])


def read_as_text(data: bytes, newline: str | None) -> list[str]:
    return list(io.TextIOWrapper(io.BytesIO(data), "utf-8", "surrogateescape", newline))


def read_by_blocks(data: bytes, newline: str | None) -> list[str]:
    return [
        line
        for block in _blocks(io.BytesIO(data), newline)
        for line in io.StringIO(block.decode("utf-8", "surrogateescape"), newline=newline)
    ]


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
