"""Payload size is bounded: in the schema, in bulk enqueue, and at the claim,
which dead-letters a row too large to read without reading it."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.factories import enqueue, invoice, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.cli.enqueue_blocks import enqueue_lines
from worker.cli.enqueue_line import stored_bytes
from worker.engine.loop import Engine
from worker.invoice import MAX_PAYLOAD_BYTES
from worker.store.dead_letters import REFUSALS, DeadLetterStore
from worker.store.outbox import ClaimRequest, Outbox
from worker.store.queries import migrations

CONSTRAINT = "outbox_payload_at_most_256_kib"
UNLIMITED = 1e9
# {"pad": "..."} is 11 bytes of JSON around the padding.
EXACTLY_AT_LIMIT = MAX_PAYLOAD_BYTES - 11
BIG = 50 * 1024 * 1024


async def insert_padded(conn: asyncpg.Connection | asyncpg.Pool, key: str, pad: int) -> None:
    """An outbox row whose payload is {"pad": "xxx..."}, built by the server (the test never
    holds a large payload either)."""
    await conn.execute(
        "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
        " VALUES ('shop', $1, jsonb_build_object('pad', repeat('x', $2)))",
        key,
        pad,
    )


def engine(pool: asyncpg.Pool, provider: ScriptedProvider) -> Engine:
    return Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={"shop": runtime(provider)},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )


async def drop_constraint(pool: asyncpg.Pool) -> None:
    # What a table owner may do; the worker must cope with what gets written then.
    await pool.execute(f"ALTER TABLE invoice_sync.outbox DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


async def test_the_schema_refuses_a_payload_over_the_limit(pool: asyncpg.Pool) -> None:
    await insert_padded(pool, "at-limit", EXACTLY_AT_LIMIT)
    size = await pool.fetchval("SELECT octet_length(payload::text) FROM invoice_sync.outbox")
    assert size == MAX_PAYLOAD_BYTES
    with pytest.raises(asyncpg.CheckViolationError, match=CONSTRAINT):
        await insert_padded(pool, "over", EXACTLY_AT_LIMIT + 1)
    with pytest.raises(asyncpg.CheckViolationError, match=CONSTRAINT):
        await pool.execute(
            "SELECT invoice_sync.enqueue('shop', 'over', jsonb_build_object('pad', repeat('x', $1)))",
            EXACTLY_AT_LIMIT + 1,
        )
    assert await table_count(pool, "outbox") == 1


async def test_migration_moves_rows_over_the_limit_to_the_dead_letters(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        for migration in migrations():
            if migration.version >= 6:
                break
            await conn.execute(migration.sql)
        await insert_padded(conn, "big", MAX_PAYLOAD_BYTES)
        await insert_padded(conn, "small", 10)
        await conn.execute(migrations()[5].sql)
        dead = await conn.fetch(
            "SELECT idempotency_key, reason, error, octet_length(payload::text) AS size"
            " FROM invoice_sync.dead_letter"
        )
        left = await conn.fetch("SELECT idempotency_key FROM invoice_sync.outbox")
        validated = await conn.fetchval(
            "SELECT convalidated FROM pg_constraint WHERE conname = $1", CONSTRAINT
        )
    finally:
        await conn.close()
    assert [r["idempotency_key"] for r in left] == ["small"]
    ((key, reason, error, size),) = [tuple(r) for r in dead]
    assert (key, reason, size) == ("big", "invalid_payload", MAX_PAYLOAD_BYTES + 11)
    assert f"{MAX_PAYLOAD_BYTES + 11} bytes" in error
    assert validated


async def test_the_claim_dead_letters_a_huge_row_without_reading_it(pool: asyncpg.Pool) -> None:
    await drop_constraint(pool)
    await insert_padded(pool, "huge", BIG)
    await enqueue(pool, "shop", "fine")
    outbox = Outbox(pool, worker_id="w1")
    wants = {"shop": ClaimRequest(rows=10, rate=UNLIMITED, burst=UNLIMITED)}
    tracemalloc.start()
    try:
        result = await outbox.outbox_claim(wants, lease=30, probe_cooldown=30)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"the claim held {peak} bytes"
    assert [row.idempotency_key for row in result.rows] == ["fine"]
    ((dead),) = result.dead
    assert dead.idempotency_key == "huge"
    assert f"{BIG + 11} bytes of JSON, over the limit of {MAX_PAYLOAD_BYTES}" in dead.error
    stored = await pool.fetchrow(
        "SELECT reason, error, octet_length(payload::text) AS size FROM invoice_sync.dead_letter"
    )
    assert (stored["reason"], stored["error"], stored["size"]) == (
        "invalid_payload",
        dead.error,
        BIG + 11,
    )


async def test_a_row_past_a_not_valid_constraint_is_dead_lettered_too(pool: asyncpg.Pool) -> None:
    # Re-added NOT VALID over a large row: an UPDATE of that row would now fail the check, so
    # the claim must move it without one (or every claim would fail).
    await drop_constraint(pool)
    await insert_padded(pool, "big", MAX_PAYLOAD_BYTES)
    await pool.execute(
        f"ALTER TABLE invoice_sync.outbox ADD CONSTRAINT {CONSTRAINT}"
        " CHECK (octet_length(payload::text) <= 262144) NOT VALID"
    )
    await enqueue(pool, "shop", "fine")
    provider = ScriptedProvider()
    worker = engine(pool, provider)
    with capture_logs() as logs:
        await asyncio.wait_for(worker.run(drain=True), 20)
    assert [a.idempotency_key for a in provider.calls] == ["fine"]
    assert await table_count(pool, "synced") == 1
    assert await table_count(pool, "outbox") == 0
    dead = await pool.fetchrow("SELECT idempotency_key, reason FROM invoice_sync.dead_letter")
    assert tuple(dead) == ("big", "invalid_payload")
    (event,) = [e for e in logs if e["event"] == "invoice.dead_lettered"]
    assert event["idempotency_key"] == "big"
    assert event["reason"] == "invalid_payload"


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"note": "x" * 1001}, "note: a text longer than 1000 characters"),
        ({"a": {"b": ["x" * 1001]}}, "a.b.0: a text longer than 1000 characters"),
        ({f"k{i}": "y" * 900 for i in range(20)}, "bytes of JSON, over the limit of 16384"),
    ],
)
async def test_oversize_provider_options_are_dead_lettered_unsent(
    pool: asyncpg.Pool, options: dict[str, object], where: str
) -> None:
    await enqueue(pool, "shop", "opts", invoice("opts", provider_options=options))
    provider = ScriptedProvider()
    worker = engine(pool, provider)
    await asyncio.wait_for(worker.run(drain=True), 20)
    dead = await pool.fetchrow("SELECT reason, error FROM invoice_sync.dead_letter")
    assert dead["reason"] == "invalid_payload"
    assert dead["error"].startswith("provider_options: ")
    assert where in dead["error"]
    assert provider.calls == []


async def test_bulk_enqueue_refuses_the_large_line_and_loads_the_rest(pool: asyncpg.Pool) -> None:
    def line(key: str, **changes: object) -> str:
        record = {"account": "shop", "idempotency_key": key, "payload": invoice(key, **changes)}
        return json.dumps(record)

    # Valid in every other way: a thousand lines, each with a long description.
    described = {"name": "item", "description": "d" * 300, "quantity": 1, "unit_price": 1}
    text = [line("first"), line("too-big", lines=[described] * 1000), line("last")]
    report = await enqueue_lines(text, Outbox(pool, worker_id="t"), accounts=None)
    ((number, message),) = report.bad
    assert number == 2
    assert message.startswith("payload: ")
    assert f"bytes of JSON, over the limit of {MAX_PAYLOAD_BYTES} (256 KiB)" in message
    assert report.loaded == 2
    keys = await pool.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY id")
    assert [r["idempotency_key"] for r in keys] == ["first", "last"]


@pytest.mark.parametrize(
    "payload",
    [
        {"a": 1e16, "b": 1.5e-07, "c": [5e-324, -0.0, 1.0], "d": 'é\n\u0001"\\'},
        {"x": [{"y": 1e300}], "z": 12345678901234567890},
    ],
)
async def test_the_enqueue_size_is_the_size_postgresql_checks(
    pool: asyncpg.Pool, payload: dict[str, object]
) -> None:
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    stored = await pool.fetchval("SELECT octet_length($1::jsonb::text)", text)
    # Never under PostgreSQL's count (-0.0 is written 0.0 there: one byte over is safe).
    assert 0 <= stored_bytes(payload, text) - stored <= 1


async def test_replay_refuses_a_payload_over_the_limit_and_replays_the_rest(
    pool: asyncpg.Pool,
) -> None:
    for dead_id, pad in ((901, MAX_PAYLOAD_BYTES), (902, 10)):
        await pool.execute(
            "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload,"
            " reason, error, attempts)"
            " VALUES ($1, 'shop', $2, jsonb_build_object('pad', repeat('x', $3)),"
            " 'invalid_payload', 'too large', 0)",
            dead_id,
            f"k{dead_id}",
            pad,
        )
    store = DeadLetterStore(pool)
    big, small = await store.dead_letter_replay([901, 902])
    assert (big.refused, small.refused) == ("too_large", None)
    assert "256 KiB" in REFUSALS["too_large"]
    fixed = json.dumps(invoice("k901"))
    (shortened,) = await store.dead_letter_replay([901], payload=fixed)
    assert shortened.refused is None
    assert await table_count(pool, "outbox") == 2
