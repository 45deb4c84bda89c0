"""The deployment-wide token bucket inside the claim, on real PostgreSQL."""

import asyncio
import time

import asyncpg
import pytest

from tests.factories import enqueue
from worker.store.outbox import ClaimRequest, Outbox


async def fill(pool: asyncpg.Pool, n: int, account: str = "shop") -> None:
    for i in range(n):
        await enqueue(pool, account, f"k{i}")


async def test_a_claim_takes_no_more_rows_than_the_bucket_has_tokens(pool: asyncpg.Pool) -> None:
    await fill(pool, 10)
    outbox = Outbox(pool, worker_id="w1")
    wants = {"shop": ClaimRequest(rows=10, rate=2.0, burst=3.0)}
    first = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
    assert len(first.rows) == 3  # a new bucket starts full: the burst
    assert first.token_waits["shop"] == pytest.approx(0.5, abs=0.05)
    empty = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
    assert empty.rows == []
    assert 0 < empty.token_waits["shop"] <= 0.5
    # Unleased candidates stayed pending: they are claimable once tokens refill.
    await asyncio.sleep(0.55)
    later = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
    assert len(later.rows) == 1
    states = await pool.fetch("SELECT state, count(*) FROM invoice_sync.outbox GROUP BY state")
    assert {r["state"]: r["count"] for r in states} == {"running": 4, "pending": 6}


async def test_no_tokens_are_spent_when_nothing_is_due(pool: asyncpg.Pool) -> None:
    outbox = Outbox(pool, worker_id="w1")
    wants = {"shop": ClaimRequest(rows=5, rate=1.0, burst=2.0)}
    result = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
    assert (result.rows, result.token_waits) == ([], {})
    await fill(pool, 5)
    result = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
    assert len(result.rows) == 2


async def test_replicas_share_one_bucket(pool: asyncpg.Pool) -> None:
    rate, burst, seconds = 40.0, 4.0, 1.5
    await fill(pool, 400)
    replicas = [Outbox(pool, worker_id=f"w{i}") for i in range(3)]
    wants = {"shop": ClaimRequest(rows=8, rate=rate, burst=burst)}
    start = time.monotonic()

    async def claim_for(outbox: Outbox) -> int:
        taken = 0
        while time.monotonic() - start < seconds:
            result = await outbox.outbox_claim(wants, lease=60, probe_cooldown=60)
            taken += len(result.rows)
            await asyncio.sleep(0.005)
        return taken

    counts = await asyncio.gather(*(claim_for(r) for r in replicas))
    elapsed = time.monotonic() - start
    assert sum(counts) <= burst + rate * elapsed + 1
    assert sum(counts) >= 0.8 * rate * seconds  # and the bucket is actually used
    assert all(counts), counts  # no replica starved
