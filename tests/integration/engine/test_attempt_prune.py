"""Pruning the attempt history: old rows go in bounded batches; synced and dead_letter stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from worker.engine.loop import prune_attempts
from worker.store.outbox import Outbox

DAY = 86400.0


async def add(pool: asyncpg.Pool, outbox_id: int, outcome: str, age_days: float) -> None:
    await pool.execute(
        "INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key, attempt,"
        " worker, started_at, duration_ms, outcome, outcome_unknown)"
        " VALUES ($1, 1, 'shop', $2, 1, 'w', $3, 5, $4, false)",
        outbox_id,
        f"k{outbox_id}",
        datetime.now(UTC) - timedelta(days=age_days),
        outcome,
    )


async def test_old_attempts_are_pruned_in_batches_but_final_ones_are_kept(
    pool: asyncpg.Pool,
) -> None:
    old = ["retry", "rate_limited", "released", "paused", "rescued", "synced", "dead_letter"]
    for n, outcome in enumerate(old, 1):
        await add(pool, n, outcome, age_days=100)
    await add(pool, 100, "retry", age_days=10)
    outbox = Outbox(pool, worker_id="w")
    assert await outbox.attempt_prune(90 * DAY, 2) == 2  # bounded
    assert await prune_attempts(outbox, 90 * DAY, batch=2, pause=0) == 3
    left = await pool.fetch("SELECT outbox_id, outcome FROM invoice_sync.attempt ORDER BY 1")
    assert [(r["outbox_id"], r["outcome"]) for r in left] == [
        (6, "synced"),
        (7, "dead_letter"),
        (100, "retry"),
    ]
