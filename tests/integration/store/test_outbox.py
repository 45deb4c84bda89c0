import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from tests.factories import enqueue, invoice, table_count
from worker.claims import AccountAction, Claimed, Resolution
from worker.errors import StoreError
from worker.store import database
from worker.store.database import StoreRefusedError
from worker.store.outbox import ClaimRequest, Outbox, WorkedAccounts, records_json

UNLIMITED = 1e9


def store(pool: asyncpg.Pool, name: str = "w1") -> Outbox:
    return Outbox(pool, worker_id=name)


async def claim(
    outbox: Outbox, wants: dict[str, int], *, lease: float, probe_cooldown: float
) -> list[Claimed]:
    """Claim with a bucket too large to limit anything (the limiter has its own tests)."""
    requests = {a: ClaimRequest(rows=n, rate=UNLIMITED, burst=UNLIMITED) for a, n in wants.items()}
    result = await outbox.outbox_claim(requests, lease=lease, probe_cooldown=probe_cooldown)
    assert result.token_waits == {}
    return result.rows


def synced(row_id: int, claim: int, invoice_id: str = "1", provider: str = "p") -> Resolution:
    """The outcome a worker writes when the provider created the invoice."""
    return Resolution(
        id=row_id, claim=claim, kind="synced", provider=provider, provider_invoice_id=invoice_id
    )


async def test_enqueue_is_idempotent_and_returns_the_same_id(pool: asyncpg.Pool) -> None:
    first = await enqueue(pool, "shop", "k1")
    again = await enqueue(pool, "shop", "k1")
    other_account = await enqueue(pool, "other", "k1")
    assert first == again
    assert other_account != first
    assert await table_count(pool, "outbox") == 2


async def test_a_synced_key_is_never_queued_again(pool: asyncpg.Pool) -> None:
    row_id = await enqueue(pool, "shop", "k1")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 5}, lease=60, probe_cooldown=60)
    await outbox.outbox_record([synced(row.id, 1, "9", provider="billclap")])
    assert await enqueue(pool, "shop", "k1") == row_id  # the function reports the synced id
    await pool.execute(
        "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload) VALUES ('shop', 'k1', '{}')"
    )
    assert await table_count(pool, "outbox") == 0  # a direct INSERT is skipped too


async def test_claim_records_the_attempt_and_lease(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    [row] = await claim(store(pool), {"shop": 10}, lease=60, probe_cooldown=60)
    assert row.attempt == 1
    assert row.prior_unknown is False
    assert json.loads(row.payload)["number"] == "k1"
    state = await pool.fetchrow(
        "SELECT state, lease_owner, outcome_unknown FROM invoice_sync.outbox"
    )
    assert dict(state) == {"state": "running", "lease_owner": "w1", "outcome_unknown": True}


async def test_claim_honours_per_account_limits_and_due_time(pool: asyncpg.Pool) -> None:
    for i in range(5):
        await enqueue(pool, "a", f"a{i}")
        await enqueue(pool, "b", f"b{i}")
    await pool.execute(
        "SELECT invoice_sync.enqueue('a', 'later', $1::jsonb, now() + interval '1 hour')",
        json.dumps(invoice()),
    )
    rows = await claim(store(pool), {"a": 10, "b": 2}, lease=60, probe_cooldown=60)
    by_account = {acc: sum(r.account == acc for r in rows) for acc in ("a", "b")}
    assert by_account == {"a": 5, "b": 2}


async def test_rows_whose_outcome_is_unknown_are_claimed_before_older_rows(
    pool: asyncpg.Pool,
) -> None:
    for i in range(6):
        await enqueue(pool, "shop", f"k{i}")
    # k4 and k5 were tried and their outcome is unknown; they are due later than k0-k3.
    await pool.execute(
        "UPDATE invoice_sync.outbox SET outcome_unknown = true, attempts = 1,"
        " available_at = now() - interval '1 second' WHERE idempotency_key IN ('k4', 'k5')"
    )
    await pool.execute(
        "UPDATE invoice_sync.outbox SET available_at = now() - interval '1 hour'"
        " WHERE NOT outcome_unknown"
    )
    outbox = store(pool)
    first = await claim(outbox, {"shop": 3}, lease=60, probe_cooldown=60)
    assert sorted((r.idempotency_key, r.prior_unknown) for r in first) == [
        ("k0", False),
        ("k4", True),
        ("k5", True),
    ]
    rest = await claim(outbox, {"shop": 10}, lease=60, probe_cooldown=60)
    assert sorted(r.idempotency_key for r in rest) == ["k1", "k2", "k3"]


async def test_concurrent_claims_never_share_a_row(pool: asyncpg.Pool) -> None:
    for i in range(200):
        await enqueue(pool, "shop", f"k{i}")
    workers = [store(pool, f"w{n}") for n in range(4)]

    async def claim_all(outbox: Outbox) -> list[int]:
        got: list[int] = []
        while rows := await claim(outbox, {"shop": 7}, lease=60, probe_cooldown=60):
            got.extend(r.id for r in rows)
        return got

    results = await asyncio.gather(*(claim_all(w) for w in workers))
    claimed = [i for r in results for i in r]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


async def test_expired_lease_is_rescued_and_reclaimed_as_unknown(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    dead_worker, rescuer = store(pool, "dead"), store(pool, "alive")
    await claim(dead_worker, {"shop": 1}, lease=0.05, probe_cooldown=60)
    await asyncio.sleep(0.1)
    assert len(await rescuer.outbox_rescue()) == 1
    [row] = await claim(rescuer, {"shop": 1}, lease=60, probe_cooldown=60)
    assert row.attempt == 2
    assert row.prior_unknown is True


async def lease_lost(pool: asyncpg.Pool) -> tuple[Outbox, Outbox, Claimed, Claimed]:
    """One row claimed by worker "slow", its lease run out, rescued and claimed by "fast":
    both stores, the old claim and the new."""
    await enqueue(pool, "shop", "k1")
    slow, fast = store(pool, "slow"), store(pool, "fast")
    [old] = await claim(slow, {"shop": 1}, lease=0.05, probe_cooldown=60)
    await asyncio.sleep(0.1)
    await fast.outbox_rescue()
    [new] = await claim(fast, {"shop": 1}, lease=60, probe_cooldown=60)
    return slow, fast, old, new


async def test_a_fenced_out_worker_cannot_overwrite_the_new_attempt(pool: asyncpg.Pool) -> None:
    slow, fast, old, new = await lease_lost(pool)
    stale = await slow.outbox_record(
        [Resolution(id=old.id, claim=old.claim, kind="dead", reason="rejected", error="late")]
    )
    assert stale.applied == frozenset()
    assert await table_count(pool, "dead_letter") == 0
    fresh = await fast.outbox_record([synced(new.id, new.claim)])
    assert fresh.applied == {new.id}
    assert await table_count(pool, "synced") == 1


async def test_a_late_outcome_cannot_land_on_a_later_claim_with_the_same_attempt_number(
    pool: asyncpg.Pool,
) -> None:
    # A claim given back unsent counts its attempt back down, so two claims can both be
    # "attempt 1": the fence is the claim, not the attempt.
    slow, other, old, mid = await lease_lost(pool)
    await other.outbox_record(
        [Resolution(id=mid.id, claim=mid.claim, kind="retry", spend=False, unknown=True)]
    )
    row = await pool.fetchrow("SELECT attempts, lease_owner FROM invoice_sync.outbox")
    assert (row["attempts"], row["lease_owner"]) == (old.attempt, None)  # as the slow one left it
    stale = await slow.outbox_record([synced(old.id, old.claim)])
    assert stale.applied == frozenset()
    assert await table_count(pool, "synced") == 0
    assert (old.claim, mid.claim) == (1, 2)


async def test_one_flush_moves_rows_atomically(pool: asyncpg.Pool) -> None:
    for key in ("ok", "bad", "again", "back"):
        await enqueue(pool, "shop", key)
    outbox = store(pool)
    rows = {
        r.idempotency_key: r for r in await claim(outbox, {"shop": 4}, lease=60, probe_cooldown=60)
    }
    summary = await outbox.outbox_record(
        [
            Resolution(
                id=rows["ok"].id,
                claim=1,
                kind="synced",
                provider="billclap",
                provider_invoice_id="77",
                invoice_number="ok",
                link="https://x/77",
            ),
            Resolution(
                id=rows["bad"].id,
                claim=1,
                kind="dead",
                reason="rejected",
                error="Party detail is required",
                http_status=500,
                response={"status": False},
            ),
            Resolution(
                id=rows["again"].id,
                claim=1,
                kind="retry",
                delay=3600,
                unknown=True,
                error="timeout",
            ),
            Resolution(id=rows["back"].id, claim=1, kind="retry", spend=False, unknown=False),
        ]
    )
    assert (summary.synced, summary.dead, summary.rescheduled) == (1, 1, 2)
    synced = await pool.fetchrow("SELECT * FROM invoice_sync.synced")
    assert synced["provider_invoice_id"] == "77"
    assert synced["link"] == "https://x/77"
    dead = await pool.fetchrow("SELECT * FROM invoice_sync.dead_letter")
    assert dead["reason"] == "rejected"
    assert dead["http_status"] == 500
    assert json.loads(dead["payload"])["number"] == "bad"
    left = {
        r["idempotency_key"]: r
        for r in await pool.fetch(
            "SELECT idempotency_key, state, attempts, outcome_unknown, available_at > now() + interval '50 minutes' AS later FROM invoice_sync.outbox"
        )
    }
    assert set(left) == {"again", "back"}
    assert dict(left["again"]) | {} == {
        "idempotency_key": "again",
        "state": "pending",
        "attempts": 1,
        "outcome_unknown": True,
        "later": True,
    }
    assert left["back"]["attempts"] == 0  # a release gives the attempt back
    assert left["back"]["later"] is False


async def test_a_failing_flush_leaves_every_row_where_it_was(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "ok")
    await enqueue(pool, "shop", "bad")
    outbox = store(pool)
    rows = await claim(outbox, {"shop": 2}, lease=60, probe_cooldown=60)
    with pytest.raises(StoreError, match="reason"):
        await outbox.outbox_record(
            [
                synced(rows[0].id, 1),
                Resolution(id=rows[1].id, claim=1, kind="dead", reason="not-a-reason", error="x"),
            ]
        )
    assert await table_count(pool, "synced") == 0
    assert await table_count(pool, "outbox") == 2


async def test_paused_accounts_are_not_claimed_except_one_probe(pool: asyncpg.Pool) -> None:
    for i in range(3):
        await enqueue(pool, "shop", f"k{i}")
    outbox = store(pool)
    [first] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    await outbox.outbox_record(
        [
            Resolution(
                id=first.id,
                claim=1,
                kind="dead",
                reason="credits_expired",
                error="Credits Expired!!!",
            )
        ],
        account_actions=[
            AccountAction(
                account="shop", pause_reason="credits_expired", pause_error="x", probe_in=0
            )
        ],
    )
    probes = await claim(outbox, {"shop": 5}, lease=60, probe_cooldown=3600)
    assert [p.probe for p in probes] == [True]
    assert await claim(outbox, {"shop": 5}, lease=60, probe_cooldown=3600) == []
    assert await outbox.outbox_unfinished(WorkedAccounts(["shop"])) == (0, 2)


async def test_throttled_account_waits(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    await outbox.outbox_record(
        [Resolution(id=row.id, claim=1, kind="retry", spend=False, delay=0)],
        account_actions=[AccountAction(account="shop", throttle=3600)],
    )
    assert await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60) == []
    assert await outbox.outbox_unfinished(WorkedAccounts(["shop"])) == (1, 0)


async def test_unfinished_counts_the_tables_enabled_accounts_when_asked(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        "INSERT INTO invoice_sync.account (name, provider, enabled, updated_by) VALUES"
        " ('db-shop', 'billclap', true, 'psql'), ('db-off', 'billclap', false, 'psql'),"
        " ('db-bad', 'billclap', true, 'psql')"
    )
    for account in ("shop", "db-shop", "db-off", "db-bad", "typo"):
        await enqueue(pool, account, "k1")
    outbox = store(pool)
    assert await outbox.outbox_unfinished(WorkedAccounts(["shop"])) == (1, 0)
    # The table's enabled accounts, less those the replica found unusable (their rows wait).
    worked = WorkedAccounts(["shop"], database=True, skip=["db-bad"])
    assert await outbox.outbox_unfinished(worked) == (2, 0)
    assert await outbox.outbox_unfinished(WorkedAccounts([], database=True)) == (2, 0)


async def recorded_statements(dsn: str, actions: list[AccountAction]) -> set[str]:
    """The first words of the statements one ``outbox_record`` of a synced row sent (on a
    pool of one connection)."""
    pool = await database.create_pool(dsn, min_size=1, max_size=1, reset_sessions=False)
    sent: set[str] = set()
    try:
        await enqueue(pool, "shop", "k1")
        outbox = store(pool)
        [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.add(record.query.split()[0]))
        await outbox.outbox_record([synced(row.id, row.claim)], account_actions=actions)
    finally:
        await pool.close()
    assert sent
    return sent


async def test_a_flush_without_account_changes_is_one_statement(dsn: str) -> None:
    # No BEGIN and COMMIT around it: the statement is atomic alone, and each is a round trip.
    assert not {"BEGIN;", "COMMIT;"} & await recorded_statements(dsn, [])


async def test_a_flush_with_an_account_change_is_one_transaction(dsn: str) -> None:
    throttle = AccountAction(account="shop", throttle=1.0)
    assert {"BEGIN;", "COMMIT;"} <= await recorded_statements(dsn, [throttle])


async def test_a_response_orjson_refuses_is_written_as_the_json_module_writes_it(
    pool: asyncpg.Pool,
) -> None:
    # A flush's records are encoded by orjson, which refuses an integer past 64 bits; such a
    # record goes through the json module instead, and is written as before.
    await enqueue(pool, "shop", "k1")
    await enqueue(pool, "shop", "k2")
    outbox = store(pool)
    rows = await claim(outbox, {"shop": 5}, lease=60, probe_cooldown=60)
    huge = {"id": 2**70, "name": "Grüße"}
    await outbox.outbox_record(
        [
            Resolution(
                id=row.id,
                claim=row.claim,
                kind="dead",
                reason="rejected",
                error="no",
                response=huge,
            )
            for row in rows
        ]
    )
    stored = await pool.fetch("SELECT response FROM invoice_sync.dead_letter")
    assert [json.loads(row["response"]) for row in stored] == [huge, huge]


def test_records_are_encoded_by_orjson_unless_it_refuses_them() -> None:
    at = datetime(2026, 12, 5, 8, 45, tzinfo=UTC)
    assert records_json([{"started_at": at, "n": 1}]) == (
        '[{"started_at":"2026-12-05T08:45:00+00:00","n":1}]'
    )
    assert records_json([{"n": 2**70}]) == '[{"n": 1180591620717411303424}]'


def test_characters_postgresql_cannot_store_are_replaced_in_records() -> None:
    # NUL and a lone surrogate, in values and keys, at any depth; the text "\u0000" (a
    # backslash and five characters) is kept as it is.
    records = [{"a": "x\x00y", "k\x00": ["\ud800", {"b": "\udfff"}], "c": "\\u0000"}]
    assert json.loads(records_json(records)) == [
        {"a": "x\ufffdy", "k\ufffd": ["\ufffd", {"b": "\ufffd"}], "c": "\\u0000"}
    ]
    # An infinity is null, as orjson writes it, also where a huge integer sends the records
    # through the json module (whose "Infinity" PostgreSQL refuses).
    assert records_json([{"n": 2**70, "f": float("inf"), "g": [float("nan")]}]) == (
        '[{"n": 1180591620717411303424, "f": null, "g": [null]}]'
    )


def test_a_record_nested_too_deep_to_walk_is_a_refused_value() -> None:
    # orjson stops at 255 levels, the walk that replaces characters at about 500: refused as a
    # value, the flusher writes that row without the provider's answer (test_refused_outcomes).
    deep: list[Any] = []
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(StoreRefusedError) as refused:
        records_json([{"n": 2**70, "response": deep}])
    assert refused.value.brief == "an outcome nested too deep to write"
    shallow: list[Any] = []
    for _ in range(300):
        shallow = [shallow]
    assert json.loads(records_json([{"response": shallow}])) == [{"response": shallow}]


async def test_a_pause_whose_message_holds_a_nul_is_written(pool: asyncpg.Pool) -> None:
    # The pause's error is the provider's message: it goes through the same encoding.
    await enqueue(pool, "shop", "k1")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    pause = AccountAction(
        account="shop", pause_reason="auth_failed", pause_error="bad\x00 token", probe_in=60
    )
    await outbox.outbox_record([synced(row.id, row.claim)], account_actions=[pause])
    error = await pool.fetchval(
        "SELECT pause_error FROM invoice_sync.account_state WHERE account = 'shop'"
    )
    assert error == "bad\ufffd token"
