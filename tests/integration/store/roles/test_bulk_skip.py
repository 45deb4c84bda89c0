"""A bulk load tells the skip trigger it leaves out synced and cancelled keys itself; only a
role that is not a producer is believed."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from tests.factories import invoice
from tests.integration.store.roles.access import INSERT_OUTBOX, Logins, connected
from worker.store.outbox import Outbox

BULK_ON = "SET LOCAL invoice_sync.bulk = on"


async def _synced_and_cancelled(dsn: str) -> None:
    """'done' synced and 'gone' cancelled for the account shop, written by the owner."""

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
            " provider_invoice_id, attempts) VALUES (999, 'shop', 'done', 'billclap', '1', 1)"
        )
        await conn.execute("SELECT invoice_sync.enqueue('shop', 'gone', '{}'::jsonb)")
        await conn.execute("SELECT invoice_sync.cancel('shop', 'gone', 'withdrawn')")

    await connected(dsn, seed)


async def _queued(dsn: str) -> list[str]:
    rows = await connected(
        dsn, lambda c: c.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY id")
    )
    return [r["idempotency_key"] for r in rows]


async def test_a_producer_that_sets_the_bulk_flag_is_still_checked_row_by_row(
    dsn: str, logins: Logins
) -> None:
    await _synced_and_cancelled(dsn)
    body = json.dumps(invoice(number="B-1"))
    conn = await asyncpg.connect(logins.producer)
    try:
        async with conn.transaction():
            await conn.execute(BULK_ON)
            for key in ("done", "gone"):
                await conn.execute(INSERT_OUTBOX + " VALUES ('shop', $1, $2::jsonb)", key, body)
                await conn.execute("SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)", key, body)
    finally:
        await conn.close()
    assert await _queued(dsn) == []


async def test_the_worker_bulk_load_leaves_out_synced_and_cancelled_keys(
    dsn: str, logins: Logins
) -> None:
    await _synced_and_cancelled(dsn)
    body = json.dumps(invoice(number="B-2"))
    pool = await asyncpg.create_pool(logins.worker, min_size=1, max_size=1)
    try:
        outbox = Outbox(pool, worker_id="test")
        rows = [("shop", key, body, None, None) for key in ("done", "new", "gone", "new")]
        assert await outbox.enqueue_many(rows) == 1
        # The flag does let the worker's rows past the trigger: the anti-join is what keeps
        # synced keys out of a bulk load, so a statement run with it must do its own.
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(BULK_ON)
            await conn.execute(INSERT_OUTBOX + " VALUES ('shop', 'done', $1::jsonb)", body)
            passed = await conn.fetchval(
                "SELECT count(*) FROM invoice_sync.outbox WHERE idempotency_key = 'done'"
            )
            await tx.rollback()
        assert passed == 1
        assert await _queued(dsn) == ["new"]
    finally:
        await pool.close()


async def test_a_key_synced_while_the_load_inserts_is_not_queued_again(dsn: str) -> None:
    # The INSERT waits for the outbox row a settling transaction deletes, then finds no
    # conflict; the synced row that transaction wrote is not in the INSERT's snapshot.
    body = json.dumps(invoice(number="R-1"))
    await connected(dsn, lambda c: c.execute("SELECT invoice_sync.enqueue('shop', 'k', '{}')"))
    settling = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        tx = settling.transaction()
        await tx.start()
        await settling.execute(
            "DELETE FROM invoice_sync.outbox WHERE idempotency_key = 'k';"
            "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
            " provider_invoice_id, attempts) VALUES (1, 'shop', 'k', 'billclap', '1', 1)"
        )
        load = asyncio.create_task(
            Outbox(pool, worker_id="test").enqueue_many([("shop", "k", body, None, None)])
        )
        await asyncio.sleep(0.5)
        assert not load.done()  # waiting on the deleted row's lock
        await tx.commit()
        assert await load == 0
    finally:
        await settling.close()
        await pool.close()
    assert await _queued(dsn) == []


async def _before_trigger_calls(dsn: str, *, bulk: bool) -> dict[str, int]:
    """How often each BEFORE trigger ran for a 3-row INSERT by ``dsn``'s login (rolled back)."""
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        if bulk:
            await conn.execute(BULK_ON)
        plan = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) "
            + INSERT_OUTBOX
            + " SELECT 'shop', 'c-' || i, $1::jsonb"
            " FROM generate_series(1, 3) i",
            json.dumps(invoice(number="C-1")),
        )
        await tx.rollback()
    finally:
        await conn.close()
    triggers = json.loads(plan)[0].get("Triggers", [])
    return {t["Trigger Name"]: t["Calls"] for t in triggers if t["Trigger Name"] != "outbox_notify"}


async def test_a_trusted_bulk_load_calls_neither_before_trigger(logins: Logins) -> None:
    # 015: for the worker's bulk load neither trigger changes a row, and calling them cost
    # about as much as the rest of the INSERT. Anyone else, and the worker without the flag,
    # still runs both for every row.
    both = {"outbox_skip_synced": 3, "outbox_clamp_available_at": 3}
    assert await _before_trigger_calls(logins.worker, bulk=True) == {}
    assert await _before_trigger_calls(logins.worker, bulk=False) == both
    assert await _before_trigger_calls(logins.producer, bulk=True) == both
    assert await _before_trigger_calls(logins.producer, bulk=False) == both


async def test_a_producer_that_sets_the_bulk_flag_is_still_clamped(logins: Logins) -> None:
    body = json.dumps(invoice(number="B-3"))
    conn = await asyncpg.connect(logins.producer)
    try:
        async with conn.transaction():
            await conn.execute(BULK_ON)
            now = await conn.fetchval("SELECT now()")
            await conn.execute(
                INSERT_OUTBOX.replace(")", ", available_at)")
                + " VALUES ('shop', 'past', $1::jsonb, now() - interval '1 day')",
                body,
            )
            stored = await conn.fetchval(
                "SELECT available_at FROM invoice_sync.outbox WHERE idempotency_key = 'past'"
            )
    finally:
        await conn.close()
    assert stored >= now


async def test_a_producer_cannot_turn_the_flag_on_part_way_through_a_statement(
    dsn: str, logins: Logins
) -> None:
    # The flag is asked for every row: setting it from the statement itself changes nothing.
    await _synced_and_cancelled(dsn)
    body = json.dumps(invoice(number="B-4"))
    conn = await asyncpg.connect(logins.producer)
    try:
        await conn.execute(
            INSERT_OUTBOX + " SELECT 'shop', k, $1::jsonb FROM (VALUES"
            " (pg_catalog.set_config('invoice_sync.bulk', 'on', false) || 'x'),"
            " ('done'), ('gone')) v(k) WHERE k <> 'onx'",
            body,
        )
    finally:
        await conn.close()
    assert await _queued(dsn) == []
