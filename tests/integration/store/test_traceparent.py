"""The producer's W3C traceparent (migration 011): checked by the outbox and by enqueue(),
returned by the claim, kept by the dead letters and by a replay. (What a producer login may do
with it: tests/integration/store/roles/test_traceparent.py.)"""

from __future__ import annotations

import json

import asyncpg
import pytest

from tests.factories import invoice
from worker.claims import Resolution
from worker.store.dead_letters import DeadLetterStore
from worker.store.outbox import ClaimRequest, Outbox
from worker.traceparent import traceparent_problem

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BAD = {
    "uppercase": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    "version 01": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "zero trace id": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "zero parent id": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "short trace id": "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    "trailing text": GOOD + "-extra",
    "empty": "",
    "not hex": "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
}
PAYLOAD = json.dumps(invoice(number="T-1"))
INSERT = (
    "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, traceparent)"
    " VALUES ('shop', $1, $2::jsonb, $3)"
)
ENQUEUE = "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb, p_traceparent => $3)"


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
async def test_a_malformed_traceparent_is_refused_by_insert_and_enqueue(
    pool: asyncpg.Pool, value: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="outbox_traceparent_is_w3c"):
        await pool.execute(INSERT, "by-insert", PAYLOAD, value)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await pool.fetchval(ENQUEUE, "by-enqueue", PAYLOAD, value)
    assert "p_traceparent is not a W3C traceparent" in str(refused.value)
    assert refused.value.constraint_name == "outbox_traceparent_is_w3c"
    assert refused.value.column_name == "traceparent"
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
    # The CLI's own check agrees with the database's.
    assert traceparent_problem(value) is not None


async def test_a_good_traceparent_is_stored_and_the_old_calls_still_work(
    pool: asyncpg.Pool,
) -> None:
    assert traceparent_problem(GOOD) is None
    await pool.execute(INSERT, "by-insert", PAYLOAD, GOOD)
    await pool.fetchval(ENQUEUE, "by-enqueue", PAYLOAD, GOOD)
    # Three and four arguments, as producers have called it since the first release.
    await pool.fetchval("SELECT invoice_sync.enqueue('shop', 'three', $1::jsonb)", PAYLOAD)
    await pool.fetchval(
        "SELECT invoice_sync.enqueue('shop', 'four', $1::jsonb, now() + interval '1 hour')",
        PAYLOAD,
    )
    await pool.fetchval(
        "SELECT invoice_sync.enqueue('shop', 'five', $1::jsonb, NULL, $2)", PAYLOAD, GOOD
    )
    rows = await pool.fetch(
        "SELECT idempotency_key, traceparent FROM invoice_sync.outbox ORDER BY id"
    )
    assert [(r["idempotency_key"], r["traceparent"]) for r in rows] == [
        ("by-insert", GOOD),
        ("by-enqueue", GOOD),
        ("three", None),
        ("four", None),
        ("five", GOOD),
    ]


async def test_the_claim_returns_it_and_dead_letters_and_replays_keep_it(
    pool: asyncpg.Pool,
) -> None:
    await pool.fetchval(ENQUEUE, "traced", PAYLOAD, GOOD)
    await pool.fetchval("SELECT invoice_sync.enqueue('shop', 'plain', $1::jsonb)", PAYLOAD)
    outbox = Outbox(pool, worker_id="test")
    claimed = await outbox.outbox_claim(
        {"shop": ClaimRequest(rows=10, rate=100.0, burst=10.0)}, lease=60, probe_cooldown=60
    )
    assert {r.idempotency_key: r.traceparent for r in claimed.rows} == {
        "traced": GOOD,
        "plain": None,
    }
    await outbox.outbox_record(
        [
            Resolution(id=r.id, claim=r.claim, kind="dead", reason="rejected", error="refused")
            for r in claimed.rows
        ]
    )
    dead = await pool.fetch(
        "SELECT outbox_id, idempotency_key, traceparent FROM invoice_sync.dead_letter"
    )
    assert {r["idempotency_key"]: r["traceparent"] for r in dead} == {
        "traced": GOOD,
        "plain": None,
    }
    replayed = await DeadLetterStore(pool).dead_letter_replay([r["outbox_id"] for r in dead])
    assert all(r.replayed_to is not None for r in replayed)
    rows = await pool.fetch("SELECT idempotency_key, traceparent FROM invoice_sync.outbox")
    assert {r["idempotency_key"]: r["traceparent"] for r in rows} == {
        "traced": GOOD,
        "plain": None,
    }
