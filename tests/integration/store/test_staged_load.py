"""A bulk load's chunk goes in by a plain INSERT, and by the INSERT that skips queued keys when
one of its keys turns out to be queued already, even by a producer while the chunk inserts:
nothing lost, nothing twice. Its rows arrive as PostgreSQL's binary COPY, written by us."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from tests.factories import invoice
from worker.store.outbox import Outbox
from worker.store.staging import EnqueueRow, staged


def rows(*keys: str) -> list[EnqueueRow]:
    return [("shop", key, json.dumps(invoice(key)), None, None) for key in keys]


async def queued(pool: asyncpg.Pool) -> list[tuple[str, str | None]]:
    found = await pool.fetch(
        "SELECT idempotency_key, payload->>'number' AS number FROM invoice_sync.outbox ORDER BY id"
    )
    return [(r["idempotency_key"], r["number"]) for r in found]


async def test_a_chunk_with_a_key_queued_already_loads_the_rest_in_order(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("SELECT invoice_sync.enqueue('shop', 'b', '{\"number\": \"first\"}')")
    assert await Outbox(pool, worker_id="test").enqueue_many(rows("a", "b", "c")) == 2
    assert await queued(pool) == [("b", "first"), ("a", "a"), ("c", "c")]


async def test_a_chunk_that_repeats_a_key_loads_it_once(pool: asyncpg.Pool) -> None:
    chunk = rows("a", "b", "a")
    assert staged(chunk).repeats_a_key
    assert await Outbox(pool, worker_id="test").enqueue_many(chunk) == 2
    assert await queued(pool) == [("a", "a"), ("b", "b")]


async def test_a_key_a_producer_queues_while_the_chunk_inserts_is_neither_lost_nor_doubled(
    dsn: str, pool: asyncpg.Pool
) -> None:
    producer = await asyncpg.connect(dsn)
    try:
        tx = producer.transaction()
        await tx.start()
        await producer.execute("SELECT invoice_sync.enqueue('shop', 'k', '{\"number\": \"p\"}')")
        load = asyncio.create_task(Outbox(pool, worker_id="test").enqueue_many(rows("a", "k", "b")))
        await asyncio.sleep(0.5)
        assert not load.done()  # the plain INSERT waits for the producer's row
        await tx.commit()
        assert await load == 2
    finally:
        await producer.close()
    assert sorted(await queued(pool)) == [("a", "a"), ("b", "b"), ("k", "p")]


async def test_every_column_arrives_as_written(pool: asyncpg.Pool) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    at = datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)  # before PostgreSQL's epoch
    later = datetime(2026, 7, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    payload = json.dumps(invoice("né\\\t"), ensure_ascii=False)
    chunk: list[EnqueueRow] = [
        ("shop", "clé 🔑\t\\N", payload, at, trace),
        ("shöp", "k", payload, later, None),
    ]
    assert await Outbox(pool, worker_id="test").enqueue_many(chunk) == 2
    payload_as_stored = await pool.fetchval("SELECT $1::jsonb::text", payload)
    found = await pool.fetch(
        "SELECT account, idempotency_key, payload::text AS payload, available_at, traceparent"
        " FROM invoice_sync.outbox ORDER BY id"
    )
    assert [(*r.values(),) for r in found] == [
        ("shop", "clé 🔑\t\\N", payload_as_stored, at, trace),
        ("shöp", "k", payload_as_stored, later, None),
    ]
