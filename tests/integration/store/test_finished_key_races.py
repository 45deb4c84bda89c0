"""A key inserted again while the flush that synced it (or the cancel that withdrew it) is being
committed is never sent: the claim deletes the new row unsent.

The outbox's BEFORE INSERT trigger reads the synced and cancelled tables before the insert's
unique-index check, which then waits for the old row's transaction: an insert arriving in that
window saw neither table's row, and went in once the old row was gone. Found by an attacker's
review (a hostile, or merely retrying, producer); before the claim's check the new row was sent
and the provider created a second invoice, which the synced table did not show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests.factories import enqueue, table_count
from tests.integration.engine.test_unstorable_answers import drain_against
from tests.integration.store.test_outbox import claim, store
from worker.store.outbox import ClaimRequest, FinishedAtClaim

Finish = Callable[[asyncpg.Connection, int], Awaitable[None]]


async def flush_synced(conn: asyncpg.Connection, row_id: int) -> None:
    """What the flush does to a synced row: out of the outbox, into synced."""
    await conn.execute(
        """
        WITH gone AS (DELETE FROM invoice_sync.outbox WHERE id = $1
                      RETURNING id, account, idempotency_key, attempts)
        INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,
                                         provider_invoice_id, attempts)
        SELECT id, account, idempotency_key, 'billclap', 'inv-1', attempts FROM gone
        """,
        row_id,
    )


async def cancel(conn: asyncpg.Connection, row_id: int) -> None:
    assert await conn.fetchval("SELECT invoice_sync.cancel('shop', 'k1')") == "cancelled"


async def insert_again_while_finishing(pool: asyncpg.Pool, finish: Finish) -> int:
    """Insert key k1 again while ``finish`` of its first row is not committed yet; the new id."""
    first = await enqueue(pool, "shop", "k1")
    async with pool.acquire() as holder, pool.acquire() as producer:
        finishing = holder.transaction()
        await finishing.start()
        await finish(holder, first)
        again = asyncio.ensure_future(
            producer.fetchval(
                "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
                " VALUES ('shop', 'k1', '{\"type\": \"invoice\"}') RETURNING id"
            )
        )
        # The insert is waiting for the old row's transaction, its trigger already passed.
        for _ in range(200):
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO invoice_sync.outbox%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting, "the second insert never waited for the first row"
        await finishing.commit()
        new_id: int = await again
    return new_id


@pytest.mark.parametrize(("finish", "state"), [(flush_synced, "synced"), (cancel, "cancelled")])
async def test_a_key_inserted_while_it_is_finished_is_deleted_unsent(
    pool: asyncpg.Pool, finish: Finish, state: str
) -> None:
    new_id = await insert_again_while_finishing(pool, finish)
    assert await table_count(pool, "outbox") == 1  # the race the trigger cannot see

    wants = {"shop": ClaimRequest(rows=5, rate=1e9, burst=1e9)}
    result = await store(pool).outbox_claim(wants, lease=60, probe_cooldown=60)

    assert result.rows == []
    assert result.finished == [
        FinishedAtClaim(id=new_id, account="shop", idempotency_key="k1", state=state)
    ]
    assert await table_count(pool, "outbox") == 0
    assert await pool.fetchval("SELECT state FROM invoice_sync.result('shop', 'k1')") == state


async def test_other_rows_of_the_claim_are_leased_beside_a_finished_one(
    pool: asyncpg.Pool,
) -> None:
    await insert_again_while_finishing(pool, flush_synced)
    await enqueue(pool, "shop", "k2")
    await enqueue(pool, "shop", "k3")
    rows = await claim(store(pool), {"shop": 5}, lease=60, probe_cooldown=60)
    assert sorted(row.idempotency_key for row in rows) == ["k2", "k3"]
    assert await table_count(pool, "outbox") == 2


async def test_the_engine_logs_the_row_and_sends_nothing(pool: asyncpg.Pool) -> None:
    await insert_again_while_finishing(pool, flush_synced)
    sent: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        sent.append(await request.text())
        return web.json_response({"status": True, "invoice_id": "second"})

    with capture_logs() as logs:
        await drain_against(pool, answer)

    assert sent == []
    [line] = [e for e in logs if e["event"] == "invoice.already_finished"]
    assert (line["account"], line["idempotency_key"], line["state"]) == ("shop", "k1", "synced")
    assert line["log_level"] == "warning"
    assert await table_count(pool, "outbox") == 0
