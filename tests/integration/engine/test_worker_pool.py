"""The engine's pool plans its statements once per connection (``worker_pool``): the claim and
the flush are not planned again at every run, which cost the server half a millisecond a claim."""

from __future__ import annotations

import asyncpg
import pytest

from tests.factories import enqueue
from worker.claims import Resolution
from worker.engine.daemon import worker_pool
from worker.store import database
from worker.store.outbox import ClaimRequest, Outbox

ROUNDS = 8


async def plans(pool: asyncpg.Pool, marker: str) -> tuple[int, int]:
    """(generic, custom) plans made for the prepared statements whose text holds ``marker``,
    over every connection of ``pool``."""
    connections = [await pool.acquire() for _ in range(pool.get_size())]
    try:
        generic = custom = 0
        for conn in connections:
            row = await conn.fetchrow(
                "SELECT coalesce(sum(generic_plans), 0) AS generic,"
                " coalesce(sum(custom_plans), 0) AS custom"
                " FROM pg_prepared_statements WHERE strpos(statement, $1) > 0",
                marker,
            )
            generic += row["generic"]
            custom += row["custom"]
    finally:
        for conn in connections:
            await pool.release(conn)
    return generic, custom


async def test_the_workers_pool_plans_its_claim_and_flush_once(dsn: str) -> None:
    pool = await worker_pool(dsn, concurrency=16)
    try:
        for n in range(ROUNDS):
            await enqueue(pool, "shop", f"k{n}")
        outbox = Outbox(pool, worker_id="w1")
        wants = {"shop": ClaimRequest(rows=1, rate=1e9, burst=1e9)}
        for _ in range(ROUNDS):
            result = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
            [row] = result.rows
            done = Resolution(
                id=row.id, claim=row.claim, kind="synced", provider="p", provider_invoice_id="1"
            )
            await outbox.outbox_record([done])
        # PostgreSQL's default plans each of the first five runs for its parameters, then
        # keeps planning the claim every time (its generic plan's estimate is the higher).
        claim_generic, claim_custom = await plans(pool, "invoice_sync.rate_bucket_level")
        record_generic, record_custom = await plans(pool, "json_to_recordset($2::json)")
    finally:
        await pool.close()
    assert claim_custom == 0
    assert claim_generic >= ROUNDS
    assert record_custom == 0
    assert record_generic >= ROUNDS


async def test_generic_plans_need_a_pool_that_keeps_its_sessions(dsn: str) -> None:
    with pytest.raises(ValueError, match="reset_sessions=False"):
        await database.create_pool(dsn, generic_plans=True)
