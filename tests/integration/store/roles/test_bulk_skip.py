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
