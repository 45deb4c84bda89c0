"""A key dead-lettered after an attempt that may have reached the provider is not enqueued
again while that dead letter is open (migration 017): an operator decides, with ``dlq replay``
or ``dlq purge``. Before, a producer enqueuing the key again (an app retrying its order event)
had it sent as a first attempt, and the invoice the earlier attempt may have created got a twin.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg

from tests.factories import enqueue, invoice, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from tests.integration.store.test_outbox import claim, store
from tests.integration.store.test_staged_load import rows
from tests.migrations import migrate_before
from worker.engine.loop import Engine
from worker.outcome import DeadLetter, Outcome, Reason, Retry
from worker.providers.base import Attempt
from worker.store import migrate
from worker.store.dead_letters import DeadLetterStore
from worker.store.outbox import ClaimRequest, FinishedAtClaim, Outbox


def timeout_then_rejected(attempt: Attempt) -> Outcome:
    """``unknown-*`` keys: a timeout after sending, then a refusal; the rest refused at once."""
    if attempt.idempotency_key.startswith("unknown") and not attempt.prior_unknown:
        return Retry(error="timed out waiting for the answer", outcome_unknown=True)
    return DeadLetter(reason=Reason.REJECTED, error="HTTP 422: GSTIN invalid", http_status=422)


async def dead_through_engine(pool: asyncpg.Pool, *keys: str) -> dict[str, int]:
    for key in keys:
        await enqueue(pool, "shop", key)
    engine = Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={"shop": runtime(ScriptedProvider(timeout_then_rejected))},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 0.0,
    )
    await asyncio.wait_for(engine.run(drain=True), 20)
    dead = await pool.fetch(
        "SELECT outbox_id, idempotency_key, outcome_unknown FROM invoice_sync.dead_letter"
    )
    assert {row["idempotency_key"]: row["outcome_unknown"] for row in dead} == {
        key: key.startswith("unknown") for key in keys
    }
    return {row["idempotency_key"]: row["outbox_id"] for row in dead}


async def test_a_key_that_may_have_reached_the_provider_is_not_enqueued_again(
    pool: asyncpg.Pool,
) -> None:
    dead = await dead_through_engine(pool, "unknown-1", "clean-1")

    # enqueue() answers with the dead letter's id, as with a synced key; a direct INSERT and a
    # bulk load skip it too. The key refused cleanly goes in again, as before.
    assert await enqueue(pool, "shop", "unknown-1") == dead["unknown-1"]
    await pool.execute(
        "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
        " VALUES ('shop', 'unknown-1', $1::jsonb)",
        json.dumps(invoice(number="unknown-1")),
    )
    assert await Outbox(pool, worker_id="test").enqueue_many(rows("unknown-1")) == 0
    assert await enqueue(pool, "shop", "clean-1") != dead["clean-1"]
    assert [
        r["idempotency_key"] for r in await pool.fetch("SELECT * FROM invoice_sync.outbox")
    ] == ["clean-1"]


async def test_an_operator_replays_or_purges_it(pool: asyncpg.Pool) -> None:
    dead = await dead_through_engine(pool, "unknown-1", "unknown-2")
    store_ = DeadLetterStore(pool)
    [replayed] = await store_.dead_letter_replay([dead["unknown-1"]])
    assert replayed.refused is None
    assert replayed.replayed_to is not None
    [row] = await claim(store(pool), {"shop": 5}, lease=60, probe_cooldown=60)
    assert row.id == replayed.replayed_to

    await pool.execute(
        "DELETE FROM invoice_sync.dead_letter WHERE outbox_id = $1", dead["unknown-2"]
    )
    assert await enqueue(pool, "shop", "unknown-2") != dead["unknown-2"]
    assert await table_count(pool, "outbox") == 2


async def test_a_row_that_got_past_the_trigger_is_deleted_at_its_claim(pool: asyncpg.Pool) -> None:
    # A bulk load by the owner skips the per-row trigger: what the claim sees decides.
    dead = await dead_through_engine(pool, "unknown-1")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL invoice_sync.bulk = on")
        row_id = await conn.fetchval(
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
            " VALUES ('shop', 'unknown-1', '{}') RETURNING id"
        )
    result = await store(pool).outbox_claim(
        {"shop": ClaimRequest(rows=5, rate=1e9, burst=1e9)}, lease=60, probe_cooldown=60
    )
    assert result.rows == []
    assert result.finished == [
        FinishedAtClaim(id=row_id, account="shop", idempotency_key="unknown-1", state="dead_letter")
    ]
    assert dead["unknown-1"] != row_id
    assert await table_count(pool, "outbox") == 0


async def test_dead_letters_from_before_017_say_unknown_from_their_history_or_reason(
    empty_dsn: str,
) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate_before(conn, 17)
        cases = [
            ("ambiguous", []),
            ("exhausted", [False]),  # its retries failed cleanly (5xx): known
            ("exhausted", []),  # its retries' history pruned: taken as unknown
            ("rejected", [True]),  # refused after a timeout: unknown
            ("rejected", []),
        ]
        for outbox_id, (reason, retries) in enumerate(cases):
            await conn.execute(
                "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key,"
                " payload, reason, error, attempts) VALUES ($1, 'shop', $2, '{}', $3, 'x', 1)",
                outbox_id,
                f"k{outbox_id}",
                reason,
            )
            for claim, unknown in enumerate(retries, start=1):
                await conn.execute(
                    "INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key,"
                    " attempt, worker, started_at, duration_ms, outcome, outcome_unknown)"
                    " VALUES ($1, $2::bigint, 'shop', $3, $2::int, 'w', now(), 1, 'retry', $4)",
                    outbox_id,
                    claim,
                    f"k{outbox_id}",
                    unknown,
                )
        # Queued again by a producer before the upgrade, beside a dead letter taken as unknown.
        queued = await conn.fetchval(
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
            " VALUES ('shop', 'k2', '{\"corrected\": true}') RETURNING id"
        )
    finally:
        await conn.close()
    await migrate.migrate(empty_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        dead = await conn.fetch(
            "SELECT outbox_id, outcome_unknown, replayed_to FROM invoice_sync.dead_letter"
            " ORDER BY outbox_id"
        )
        row = await conn.fetchrow(
            "SELECT replayed_from, outcome_unknown FROM invoice_sync.outbox WHERE id = $1", queued
        )
    finally:
        await conn.close()
    assert [r["outcome_unknown"] for r in dead] == [True, False, True, True, False]
    # The queued row is that dead letter's replay, on the safe path, not deleted at its claim.
    assert [r["replayed_to"] for r in dead] == [None, None, queued, None, None]
    assert (row["replayed_from"], row["outcome_unknown"]) == (2, True)
