"""Bulk enqueue with parser processes (what the CLI does) gives the same report and the same rows,
in file order, as validating in-process."""

from __future__ import annotations

import io
import json
import tracemalloc
from typing import Any

import asyncpg
import pytest

from tests.factories import invoice
from worker.cli import enqueue_blocks
from worker.cli.enqueue_blocks import enqueue_lines, enqueue_stream
from worker.store.outbox import Outbox
from worker.store.staging import Staged


def lines(count: int) -> tuple[list[str], list[int]]:
    """``count`` lines, every seventh bad (a payload without lines) and every eleventh blank;
    and the numbers of the bad ones."""
    text, bad = [], []
    for number in range(1, count + 1):
        if number % 11 == 0:
            text.append("   ")
            continue
        payload = invoice(f"P-{number}")
        if number % 7 == 0:
            payload["lines"] = []
            bad.append(number)
        record = {"account": "shop", "idempotency_key": f"k-{number}", "payload": payload}
        text.append(json.dumps(record))
    return text, bad


@pytest.mark.parametrize("parsers", [0, 2])
async def test_parsers_load_in_file_order_and_number_bad_lines(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, parsers: int
) -> None:
    # Many blocks, so several parse at once.
    monkeypatch.setattr(enqueue_blocks, "CHUNK_BYTES", 5000)
    text, bad = lines(700)
    report = await enqueue_lines(
        text, Outbox(pool, worker_id="test"), accounts=frozenset({"shop"}), parsers=parsers
    )
    assert [number for number, _message in report.bad] == bad
    assert all(message.startswith("payload: lines") for _number, message in report.bad)
    good = [n for n in range(1, 701) if n % 11 and n not in bad]
    assert (report.lines, report.loaded, report.repeated) == (700 - 700 // 11, len(good), 0)
    keys = await pool.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY id")
    assert [r["idempotency_key"] for r in keys] == [f"k-{n}" for n in good]


async def test_cancelled_keys_are_reported_like_synced_ones_and_not_loaded(
    pool: asyncpg.Pool,
) -> None:
    text = lines(3)[0]
    await pool.execute(
        "SELECT invoice_sync.enqueue('shop', 'k-2', '{}'::jsonb);"
        "SELECT invoice_sync.cancel('shop', 'k-2', 'withdrawn')"
    )
    report = await enqueue_lines(text, Outbox(pool, worker_id="test"), accounts=None, parsers=0)
    assert (report.loaded, report.repeated) == (2, 1)
    keys = await pool.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY id")
    assert [r["idempotency_key"] for r in keys] == ["k-1", "k-3"]


async def test_a_failing_copy_stops_the_parsers_and_keeps_what_was_loaded(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enqueue_blocks, "CHUNK_BYTES", 5000)
    outbox = Outbox(pool, worker_id="test")
    real = outbox.enqueue_staged
    calls = 0

    async def fail_third(chunk: Staged) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("database went away")
        return await real(chunk)

    monkeypatch.setattr(outbox, "enqueue_staged", fail_third)
    with pytest.raises(RuntimeError, match="went away"):
        await enqueue_lines(lines(700)[0], outbox, accounts=None, parsers=2)
    assert calls == 3
    count = await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox")
    assert count > 0  # the first two blocks stay committed


async def test_a_traceparent_per_line_is_loaded_and_a_malformed_one_reported_by_number(
    pool: asyncpg.Pool,
) -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    records: list[dict[str, object]] = [
        {"traceparent": good},
        {},
        {"traceparent": None},
        {"traceparent": good.upper()},
        {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
        {"traceparent": 42},
    ]
    text = [
        json.dumps({"account": "shop", "idempotency_key": f"t-{n}", "payload": invoice(), **r})
        for n, r in enumerate(records, start=1)
    ]
    report = await enqueue_lines(text, Outbox(pool, worker_id="test"), accounts=None)
    assert [number for number, _message in report.bad] == [4, 5, 6]
    assert all(message.startswith("traceparent: ") for _number, message in report.bad)
    rows = await pool.fetch(
        "SELECT idempotency_key, traceparent FROM invoice_sync.outbox ORDER BY id"
    )
    assert [(r["idempotency_key"], r["traceparent"]) for r in rows] == [
        ("t-1", good),
        ("t-2", None),
        ("t-3", None),
    ]


async def test_given_lines_with_lone_surrogates_are_reported_by_number(pool: asyncpg.Pool) -> None:
    good = json.dumps({"account": "shop", "idempotency_key": "g", "payload": invoice()})
    # As read with surrogateescape (byte 0xff), and a surrogate no read would give.
    text = [good, good.replace('"g"', '"\udcff"'), good.replace('"g"', '"\ud800"')]
    report = await enqueue_lines(text, Outbox(pool, worker_id="test"), accounts=None)
    assert [number for number, _message in report.bad] == [2, 3]
    assert all("surrogate" in message for _number, message in report.bad)
    assert report.loaded == 1


async def test_a_given_line_is_one_line_whatever_line_ends_it_holds(pool: asyncpg.Pool) -> None:
    good = json.dumps({"account": "shop", "idempotency_key": "g", "payload": invoice()})
    text = ["{\nZ", "{\r", good]
    report = await enqueue_lines(text, Outbox(pool, worker_id="test"), accounts=None)
    assert [number for number, _message in report.bad] == [1, 2]
    assert (report.lines, report.loaded) == (3, 1)


class EndlessLine(io.RawIOBase):
    """A good line, then ``size`` bytes without a line end (generated as read, never held
    here), then ``after``: what ``invoice-sync enqueue -`` reads from a runaway producer."""

    def __init__(self, first: bytes, size: int, after: bytes) -> None:
        self.first, self.left, self.after = first, size, after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.first:
            piece, self.first = self.first[: len(view)], self.first[len(view) :]
        elif self.left:
            piece = b"x" * min(len(view), self.left)
            self.left -= len(piece)
        else:
            piece, self.after = self.after[: len(view)], self.after[len(view) :]
        view[: len(piece)] = piece
        return len(piece)


async def test_a_line_far_over_the_limit_is_read_past_not_held(pool: asyncpg.Pool) -> None:
    """64 MiB without a line end: memory stays a fraction of it, the line is one bad line by
    number, and the lines after it load under their own numbers."""

    def line(n: int) -> str:
        return json.dumps({"account": "shop", "idempotency_key": f"k-{n}", "payload": invoice()})

    after = f"\n{line(3)}\n{line(4)}\n"
    size = 64 * 1024 * 1024
    stream = EndlessLine(f"{line(1)}\n".encode(), size, after.encode())
    tracemalloc.start()
    try:
        report = await enqueue_stream(
            io.BufferedReader(stream),
            Outbox(pool, worker_id="test"),
            accounts=None,
            parsers=0,
            newline="\n",
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert report.bad == [
        (2, f"{size} bytes: far over the payload limit of 262144 bytes (256 KiB); not read")
    ]
    assert (report.lines, report.loaded) == (4, 3)
    keys = await pool.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY id")
    assert [r["idempotency_key"] for r in keys] == ["k-1", "k-3", "k-4"]
