"""An invoice's story (``worker.store.story``) read from a real PostgreSQL: the place it is in
now, followed across a replay, and its attempts in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.factories import enqueue
from worker.store.dead_letters import DeadLetterStore
from worker.store.results import Results
from worker.store.story import CANCELLED, DEAD, PENDING, PURGED, SYNCED, invoice_story

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


async def insert_attempt(
    pool: asyncpg.Pool, outbox_id: int, claim: int, outcome: str, **extra: object
) -> None:
    values: dict[str, object] = {
        "outbox_id": outbox_id,
        "claim": claim,
        "account": "shop",
        "idempotency_key": "order-1",
        "attempt": claim,
        "worker": "w1",
        "provider": "refrens",
        "started_at": T0 + timedelta(minutes=claim + outbox_id),
        "duration_ms": 120,
        "outcome": outcome,
        "outcome_unknown": False,
    }
    values.update(extra)
    columns = ", ".join(values)
    marks = ", ".join(f"${n}" for n in range(1, len(values) + 1))
    await pool.execute(
        f"INSERT INTO invoice_sync.attempt ({columns}) VALUES ({marks})",
        *values.values(),
    )


async def dead_letter(pool: asyncpg.Pool, outbox_id: int) -> None:
    """Move the outbox row to the dead letters, as a flush of a dead outcome does."""
    await pool.execute(
        "WITH gone AS (DELETE FROM invoice_sync.outbox WHERE id = $1 RETURNING *)"
        " INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload,"
        " reason, error, http_status, attempts)"
        " SELECT id, account, idempotency_key, payload, 'rejected', 'HTTP 422: GSTIN invalid',"
        " 422, 2 FROM gone",
        outbox_id,
    )


async def sync(pool: asyncpg.Pool, outbox_id: int) -> None:
    await pool.execute(
        "WITH gone AS (DELETE FROM invoice_sync.outbox WHERE id = $1 RETURNING *)"
        " INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
        " provider_invoice_id, invoice_number, link, pdf_url, attempts)"
        " SELECT id, account, idempotency_key, 'refrens', 'inv_77', 'WEB-9',"
        " 'https://example.test/i/77', 'https://example.test/i/77.pdf', 1 FROM gone",
        outbox_id,
    )


async def test_an_unknown_key_has_no_story(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "order-1")
    assert await invoice_story(pool, "shop", "order-2") is None
    assert await invoice_story(pool, "other", "order-1") is None


async def test_a_new_row_is_pending_with_no_attempts(pool: asyncpg.Pool) -> None:
    row_id = await enqueue(pool, "shop", "order-1")
    story = await invoice_story(pool, "shop", "order-1")
    assert story is not None
    assert (story.state, story.outbox_id, story.history, story.attempts) == (
        PENDING,
        row_id,
        [row_id],
        [],
    )
    assert story.next_attempt_at is not None


async def test_the_story_follows_a_replay_to_its_sync(pool: asyncpg.Pool) -> None:
    first = await enqueue(pool, "shop", "order-1")
    await insert_attempt(pool, first, 1, "retry", http_status=503, error="HTTP 503", reason=None)
    await insert_attempt(
        pool,
        first,
        2,
        "dead_letter",
        http_status=422,
        reason="rejected",
        error="HTTP 422: GSTIN invalid",
        response=json.dumps({"message": "GSTIN invalid"}),
        calls=json.dumps([{"kind": "login", "http_status": 200, "duration_ms": 12}]),
    )
    await dead_letter(pool, first)

    dead = await invoice_story(pool, "shop", "order-1")
    assert dead is not None
    assert (dead.state, dead.outbox_id, dead.reason, dead.error) == (
        DEAD,
        first,
        "rejected",
        "HTTP 422: GSTIN invalid",
    )
    assert [a.outcome for a in dead.attempts] == ["retry", "dead_letter"]
    assert dead.attempts[1].calls == [{"kind": "login", "http_status": 200, "duration_ms": 12}]
    assert dead.attempts[1].response == {"message": "GSTIN invalid"}

    [replay] = await DeadLetterStore(pool).dead_letter_replay([first])
    assert replay.replayed_to is not None
    pending = await invoice_story(pool, "shop", "order-1")
    assert pending is not None
    assert (pending.state, pending.outbox_id, pending.history) == (
        PENDING,
        replay.replayed_to,
        [first, replay.replayed_to],
    )

    await insert_attempt(pool, replay.replayed_to, 1, "synced", http_status=201)
    await sync(pool, replay.replayed_to)
    synced = await invoice_story(pool, "shop", "order-1")
    assert synced is not None
    assert synced.state == SYNCED
    assert (synced.provider_invoice_id, synced.invoice_number, synced.link, synced.pdf_url) == (
        "inv_77",
        "WEB-9",
        "https://example.test/i/77",
        "https://example.test/i/77.pdf",
    )
    assert [(a.outbox_id, a.outcome) for a in synced.attempts] == [
        (first, "retry"),
        (first, "dead_letter"),
        (replay.replayed_to, "synced"),
    ]
    assert synced.history == [first, replay.replayed_to]


async def test_attempts_outlive_a_purged_dead_letter(pool: asyncpg.Pool) -> None:
    row_id = await enqueue(pool, "shop", "order-1")
    await insert_attempt(pool, row_id, 1, "dead_letter", reason="rejected")
    await dead_letter(pool, row_id)
    await pool.execute("DELETE FROM invoice_sync.dead_letter")
    story = await invoice_story(pool, "shop", "order-1")
    assert story is not None
    assert (story.state, story.outbox_id, len(story.attempts)) == (PURGED, row_id, 1)


async def test_a_key_cancelled_after_a_replay_is_cancelled_with_its_chain(
    pool: asyncpg.Pool,
) -> None:
    first = await enqueue(pool, "shop", "order-1")
    await insert_attempt(pool, first, 1, "dead_letter", reason="rejected")
    await dead_letter(pool, first)
    [replay] = await DeadLetterStore(pool).dead_letter_replay([first])
    assert replay.replayed_to is not None

    outcome = await Results(pool).invoice_cancel(
        "shop", "order-1", reason="order refunded", actor="ops@host"
    )
    assert (outcome.state, outcome.withdrawn) == ("cancelled", True)

    story = await invoice_story(pool, "shop", "order-1")
    assert story is not None
    cancelled_at, login = await pool.fetchrow(
        "SELECT cancelled_at, cancelled_by FROM invoice_sync.cancelled WHERE outbox_id = $1",
        replay.replayed_to,
    )
    assert (story.state, story.outbox_id, story.history) == (
        CANCELLED,
        replay.replayed_to,
        [first, replay.replayed_to],
    )
    assert (story.reason, story.since, story.cancelled_by) == (
        "order refunded",
        cancelled_at,
        login,
    )
    assert story.error is None
    assert story.next_attempt_at is None
    assert [(a.outbox_id, a.outcome) for a in story.attempts] == [(first, "dead_letter")]
