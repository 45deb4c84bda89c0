"""The dead-letter store and the watch's reads, against a real PostgreSQL.

Dead letters get there through the real path where the test is about what the engine stored
(a scripted provider answering DeadLetter), and through direct INSERTs where a test needs a
particular age, account or reason.
"""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.factories import enqueue, invoice, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.engine.loop import Engine
from worker.outcome import DeadLetter, Reason
from worker.store import dead_letters
from worker.store.dead_letters import DeadLetterFilter, DeadLetterStore
from worker.store.outbox import Outbox
from worker.store.queries import queries
from worker.store.stats import WatchStore


async def drain(pool: asyncpg.Pool, provider: ScriptedProvider) -> None:
    engine = Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={"shop": runtime(provider)},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )
    await asyncio.wait_for(engine.run(drain=True), 20)


def rejecting() -> ScriptedProvider:
    return ScriptedProvider(
        lambda a: DeadLetter(
            reason=Reason.REJECTED,
            error=f"HTTP 422: GSTIN invalid for {a.idempotency_key}",
            http_status=422,
            response={"message": "GSTIN invalid"},
        )
    )


async def insert_dead(
    pool: asyncpg.Pool,
    dead_id: int,
    account: str = "shop",
    key: str | None = None,
    *,
    reason: str = "rejected",
    age: timedelta = timedelta(0),
) -> int:
    key = key or f"k{dead_id}"
    await pool.execute(
        "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload,"
        " reason, error, http_status, attempts, dead_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5, 'refused', 422, 1, now() - $6::interval)",
        dead_id,
        account,
        key,
        json.dumps(invoice(number=key)),
        reason,
        age,
    )
    return dead_id


async def dead_through_engine(pool: asyncpg.Pool, *keys: str) -> dict[str, int]:
    for key in keys:
        await enqueue(pool, "shop", key)
    await drain(pool, rejecting())
    rows = await pool.fetch("SELECT outbox_id, idempotency_key FROM invoice_sync.dead_letter")
    return {row["idempotency_key"]: row["outbox_id"] for row in rows}


async def test_list_filters_by_reason_account_and_age_newest_first(pool: asyncpg.Pool) -> None:
    await dead_through_engine(pool, "a1", "a2")
    await insert_dead(pool, 900001, "other", reason="duplicate", age=timedelta(days=3))
    await insert_dead(pool, 900002, "other", reason="rejected", age=timedelta(hours=1))
    store = DeadLetterStore(pool)

    every = await store.dead_letter_list(DeadLetterFilter())
    assert [r.account for r in every][-2:] == ["other", "other"]  # oldest last
    assert [r.id for r in every][-1] == 900001
    assert {
        r.reason for r in await store.dead_letter_list(DeadLetterFilter(reason="duplicate"))
    } == {"duplicate"}
    other = await store.dead_letter_list(DeadLetterFilter(account="other"))
    assert [r.id for r in other] == [900002, 900001]
    recent = await store.dead_letter_list(
        DeadLetterFilter(since=datetime.now(UTC) - timedelta(days=1))
    )
    assert 900001 not in {r.id for r in recent}
    assert len(recent) == 3
    assert len(await store.dead_letter_list(DeadLetterFilter(limit=2))) == 2
    engine_row = next(r for r in every if r.account == "shop")
    assert engine_row.http_status == 422
    assert engine_row.attempts == 1
    assert "GSTIN invalid" in engine_row.error


async def test_show_has_payload_error_and_provider_response(pool: asyncpg.Pool) -> None:
    ids = await dead_through_engine(pool, "s1")
    row = await DeadLetterStore(pool).dead_letter_show(ids["s1"])
    assert row is not None
    assert row.payload["number"] == "s1"
    assert row.response == {"message": "GSTIN invalid"}
    assert row.error == "HTTP 422: GSTIN invalid for s1"
    assert row.first_attempt_at is not None
    assert row.replayed_at is None
    assert await DeadLetterStore(pool).dead_letter_show(123456789) is None


async def test_replay_moves_back_records_it_and_syncs(pool: asyncpg.Pool) -> None:
    ids = await dead_through_engine(pool, "r1", "r2")
    store = DeadLetterStore(pool)
    [result] = await store.dead_letter_replay([ids["r1"]])
    assert result.refused is None
    new = await pool.fetchrow("SELECT * FROM invoice_sync.outbox WHERE id = $1", result.replayed_to)
    assert (new["state"], new["attempts"], new["replayed_from"]) == ("pending", 0, ids["r1"])
    assert new["available_at"] <= await pool.fetchval("SELECT now()")
    marked = await store.dead_letter_show(ids["r1"])
    assert marked is not None
    assert marked.replayed_to == result.replayed_to
    assert marked.replayed_at is not None

    [again] = await store.dead_letter_replay([ids["r1"]])
    assert (again.refused, again.replayed_to) == ("already_replayed", None)
    assert [r.id for r in await store.dead_letter_list(DeadLetterFilter())] == [ids["r2"]]
    assert len(await store.dead_letter_list(DeadLetterFilter(include_replayed=True))) == 2

    await drain(pool, ScriptedProvider())
    synced = await pool.fetchrow("SELECT outbox_id, attempts FROM invoice_sync.synced")
    assert synced["outbox_id"] == result.replayed_to
    assert synced["attempts"] == 1
    assert await table_count(pool, "dead_letter") == 2  # the history stays


async def test_replay_refuses_synced_keys_and_keys_in_the_outbox(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "done")
    await drain(pool, ScriptedProvider())
    synced = await insert_dead(pool, 900010, key="done")
    queued = await insert_dead(pool, 900011, key="queued")
    await enqueue(pool, "shop", "queued")  # the producer wrote the key again
    results = await DeadLetterStore(pool).dead_letter_replay([synced, queued, 42])
    assert [(r.id, r.refused) for r in results] == [
        (synced, "synced"),
        (queued, "in_outbox"),
        (42, "not_found"),
    ]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM invoice_sync.dead_letter WHERE replayed_at IS NOT NULL"
        )
        == 0
    )
    assert await table_count(pool, "outbox") == 1


async def test_replay_refuses_a_key_cancelled_since(pool: asyncpg.Pool) -> None:
    dead_id = await insert_dead(pool, 900015, key="withdrawn")
    await enqueue(pool, "shop", "withdrawn")  # the producer wrote the key again, then took it back
    assert await pool.fetchval("SELECT invoice_sync.cancel('shop', 'withdrawn')") == "cancelled"
    [result] = await DeadLetterStore(pool).dead_letter_replay([dead_id])
    assert result.refused == "cancelled"
    assert await table_count(pool, "outbox") == 0


async def test_two_dead_letters_of_one_key_replay_once(pool: asyncpg.Pool) -> None:
    first = await insert_dead(pool, 900020, key="twice", age=timedelta(hours=2))
    second = await insert_dead(pool, 900021, key="twice")
    results = await DeadLetterStore(pool).dead_letter_replay([first, second])
    assert [r.refused for r in results] == [None, "in_outbox"]
    assert await table_count(pool, "outbox") == 1


async def test_corrected_payload_replaces_the_stored_one(pool: asyncpg.Pool) -> None:
    dead_id = await insert_dead(pool, 900030, key="fix")
    fixed = json.dumps(invoice(number="fix", notes="corrected"))
    [result] = await DeadLetterStore(pool).dead_letter_replay([dead_id], payload=fixed)
    payload = await pool.fetchval(
        "SELECT payload::text FROM invoice_sync.outbox WHERE id = $1", result.replayed_to
    )
    assert json.loads(payload)["notes"] == "corrected"
    with pytest.raises(ValueError, match="exactly one"):
        await DeadLetterStore(pool).dead_letter_replay([1, 2], payload=fixed)


async def test_dry_run_reports_and_changes_nothing(pool: asyncpg.Pool) -> None:
    dead_id = await insert_dead(pool, 900040)
    [result] = await DeadLetterStore(pool).dead_letter_replay([dead_id], dry_run=True)
    assert result.refused is None
    assert result.replayed_to is not None
    assert await table_count(pool, "outbox") == 0
    row = await DeadLetterStore(pool).dead_letter_show(dead_id)
    assert row is not None
    assert row.replayed_at is None


async def test_replay_runs_in_batches(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dead_letters, "REPLAY_BATCH", 2)
    ids = [await insert_dead(pool, 900050 + i) for i in range(5)]
    results = await DeadLetterStore(pool).dead_letter_replay(ids)
    assert [r.refused for r in results] == [None] * 5
    assert await table_count(pool, "outbox") == 5


async def test_purge_deletes_only_old_matching_rows(pool: asyncpg.Pool) -> None:
    await insert_dead(pool, 900060, "shop", reason="duplicate", age=timedelta(days=40))
    await insert_dead(pool, 900061, "shop", reason="rejected", age=timedelta(days=40))
    await insert_dead(pool, 900062, "other", reason="duplicate", age=timedelta(days=40))
    await insert_dead(pool, 900063, "shop", reason="duplicate", age=timedelta(days=2))
    store = DeadLetterStore(pool)
    thirty_days = 30 * 86400.0
    preview = await store.dead_letter_purge(thirty_days, reason="duplicate", dry_run=True)
    assert [(c.account, c.reason, c.count) for c in preview] == [
        ("other", "duplicate", 1),
        ("shop", "duplicate", 1),
    ]
    assert await table_count(pool, "dead_letter") == 4
    done = await store.dead_letter_purge(thirty_days, reason="duplicate", account="shop")
    assert [(c.account, c.count) for c in done] == [("shop", 1)]
    left = {
        r["outbox_id"] for r in await pool.fetch("SELECT outbox_id FROM invoice_sync.dead_letter")
    }
    assert left == {900061, 900062, 900063}


async def test_watch_counts_what_finished_since_it_began(pool: asyncpg.Pool) -> None:
    await insert_dead(pool, 900070, "old", age=timedelta(hours=1))
    store = WatchStore(pool)
    since = await store.status_watch_start()
    for i in range(3):
        await enqueue(pool, "shop", f"w{i}")
    await enqueue(pool, "shop", "bad", invoice(lines=[]))
    await drain(pool, ScriptedProvider())
    for i in range(2):
        await enqueue(pool, "shop", f"later{i}")
    readout = await store.read(since)
    assert readout.synced == {"shop": 3}
    assert readout.dead == {"shop": {"invalid_payload": 1}}
    assert readout.pending == {"shop": 2}
    assert readout.running == {}
    assert readout.finished == 4


async def test_watch_reads_can_use_indexes(pool: asyncpg.Pool) -> None:
    """With sequential scans off the planner must find an index for each read, so on a big
    table it has one to choose."""
    plans = []
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        for name, args in (
            ("status_watch_finished", [datetime.now(UTC)]),
            ("status_watch_remaining", []),
        ):
            query = queries()[name]
            rows = await conn.fetch("EXPLAIN " + query, *args)
            plans.append("\n".join(r[0] for r in rows))
    finished, remaining = plans
    assert "synced_synced_at_idx" in finished
    assert "dead_letter_dead_at_idx" in finished
    assert "outbox_claim_idx" in remaining
    assert "outbox_lease_idx" in remaining
    assert "Seq Scan" not in finished + remaining
