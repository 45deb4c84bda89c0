"""invoice_sync.result() and invoice_sync.cancel() (migration 010): every state, the claim race
made deterministic, and the cancelled key that cannot come back."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from tests.factories import enqueue, invoice, table_count
from tests.integration.store.test_outbox import claim, store, synced
from worker.claims import Resolution
from worker.errors import StoreError
from worker.store.queries import queries
from worker.store.results import Results

RESULT = "SELECT * FROM invoice_sync.result($1, $2)"


async def result(
    pool: asyncpg.Pool, key: str | None, account: str | None = "shop"
) -> asyncpg.Record:
    row: asyncpg.Record = await pool.fetchrow(RESULT, account, key)
    return row


async def cancel(pool: asyncpg.Pool, key: str, reason: str | None = None) -> str:
    state: str = await pool.fetchval("SELECT invoice_sync.cancel('shop', $1, $2)", key, reason)
    return state


async def test_result_of_a_pending_row_and_of_a_key_never_seen(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    row = await result(pool, "k1")
    assert (row["state"], row["attempts"], row["provider_invoice_id"]) == ("pending", 0, None)
    assert row["updated_at"] is not None
    for account, key in (("shop", "nope"), ("elsewhere", "k1"), ("shop", None), (None, None)):
        assert dict(await result(pool, key, account)) == {
            "state": "unknown",
            "provider_invoice_id": None,
            "invoice_number": None,
            "link": None,
            "pdf_url": None,
            "reason": None,
            "error": None,
            "attempts": None,
            "updated_at": None,
        }


async def test_result_is_in_flight_while_claimed_and_while_an_outcome_is_unknown(
    pool: asyncpg.Pool,
) -> None:
    await enqueue(pool, "shop", "k1")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    assert (await result(pool, "k1"))["state"] == "in_flight"
    # A timeout: back to pending, but the invoice may exist at the provider.
    timeout = Resolution(id=row.id, claim=row.claim, kind="retry", unknown=True, error="timeout")
    await outbox.outbox_record([timeout])
    after = await result(pool, "k1")
    assert (after["state"], after["error"], after["attempts"]) == ("in_flight", "timeout", 1)
    # Refused before a byte left: nothing can exist, the row is plainly pending again.
    [again] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    unsent = Resolution(id=again.id, claim=again.claim, kind="retry", unknown=False, error="dns")
    await outbox.outbox_record([unsent])
    assert (await result(pool, "k1"))["state"] == "pending"


async def test_result_of_a_synced_row_carries_the_providers_answer(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    done = Resolution(
        id=row.id,
        claim=row.claim,
        kind="synced",
        provider="billclap",
        provider_invoice_id="77",
        invoice_number="WEB-1",
        link="https://x.example/77",
        pdf_url="https://x.example/77.pdf",
    )
    await outbox.outbox_record([done])
    found = await result(pool, "k1")
    assert dict(found) | {"updated_at": None} == {
        "state": "synced",
        "provider_invoice_id": "77",
        "invoice_number": "WEB-1",
        "link": "https://x.example/77",
        "pdf_url": "https://x.example/77.pdf",
        "reason": None,
        "error": None,
        "attempts": 1,
        "updated_at": None,
    }
    assert (await Results(pool).invoice_result("shop", "k1")).provider_invoice_id == "77"


async def dead_letter(pool: asyncpg.Pool, key: str) -> int:
    await enqueue(pool, "shop", key)
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    dead = Resolution(
        id=row.id, claim=row.claim, kind="dead", reason="rejected", error="GSTIN invalid"
    )
    await outbox.outbox_record([dead])
    return row.id


async def test_result_of_a_dead_letter_then_follows_its_replay(pool: asyncpg.Pool) -> None:
    dead_id = await dead_letter(pool, "k1")
    found = await result(pool, "k1")
    assert (found["state"], found["reason"], found["error"]) == (
        "dead",
        "rejected",
        "GSTIN invalid",
    )
    # `dlq replay`'s query: the key comes back as a new outbox row.
    await pool.fetch(queries()["dead_letter_replay"], [dead_id], None)
    assert (await result(pool, "k1"))["state"] == "pending"
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    await outbox.outbox_record([synced(row.id, row.claim, "5")])
    assert (await result(pool, "k1"))["state"] == "synced"


async def test_cancel_withdraws_a_pending_row_for_good(pool: asyncpg.Pool) -> None:
    row_id = await enqueue(pool, "shop", "k1")
    assert await cancel(pool, "k1", "order cancelled") == "cancelled"
    assert await cancel(pool, "k1", "again") == "cancelled"  # idempotent
    assert await table_count(pool, "outbox") == 0
    kept = await pool.fetchrow("SELECT * FROM invoice_sync.cancelled")
    assert (kept["outbox_id"], kept["reason"], kept["attempts"]) == (row_id, "order cancelled", 0)
    assert kept["payload"] is not None
    found = await result(pool, "k1")
    assert (found["state"], found["reason"]) == ("cancelled", "order cancelled")
    # The key cannot be enqueued again, by enqueue() nor by a plain INSERT.
    assert await enqueue(pool, "shop", "k1") == row_id
    await pool.execute(
        "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
        " VALUES ('shop', 'k1', '{}')"
    )
    assert await table_count(pool, "outbox") == 0
    assert await claim(store(pool), {"shop": 5}, lease=60, probe_cooldown=60) == []


async def test_cancel_is_too_late_or_unknown_where_nothing_is_pending(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "sent")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    assert await cancel(pool, "sent") == "in_flight"
    await outbox.outbox_record([synced(row.id, row.claim)])
    assert await cancel(pool, "sent") == "synced"
    await dead_letter(pool, "dead")
    assert await cancel(pool, "dead") == "dead"
    assert await cancel(pool, "never") == "unknown"
    assert await table_count(pool, "cancelled") == 0


async def test_cancel_leaves_a_row_whose_last_outcome_is_unknown(pool: asyncpg.Pool) -> None:
    """The invoice may exist at the provider: only the settling attempt may decide."""
    await enqueue(pool, "shop", "k1")
    outbox = store(pool)
    [row] = await claim(outbox, {"shop": 1}, lease=60, probe_cooldown=60)
    await outbox.outbox_record([Resolution(id=row.id, claim=row.claim, kind="retry", unknown=True)])
    assert await cancel(pool, "k1") == "in_flight"
    assert await table_count(pool, "outbox") == 1


@pytest.mark.parametrize(("account", "key"), [(None, "k"), ("", "k"), ("shop", None), ("shop", "")])
async def test_cancel_refuses_a_missing_argument_by_name(
    pool: asyncpg.Pool, account: str | None, key: str | None
) -> None:
    named = "account" if not account else "idempotency_key"
    with pytest.raises(asyncpg.InvalidParameterValueError, match=f"{named} must not be null"):
        await pool.fetchval("SELECT invoice_sync.cancel($1, $2)", account, key)


async def test_cancel_waits_for_a_claim_in_progress_and_then_sends_nothing_back(
    pool: asyncpg.Pool,
) -> None:
    """The claim's lock is held (its statement has not committed): cancel waits, then sees the
    row running and answers in_flight, leaving the row to its attempt."""
    await enqueue(pool, "shop", "k1")
    async with pool.acquire() as claimer:
        transaction = claimer.transaction()
        await transaction.start()
        await claimer.execute(
            "UPDATE invoice_sync.outbox SET state = 'running', claims = claims + 1,"
            " outcome_unknown = true WHERE idempotency_key = 'k1'"
        )
        cancelling = asyncio.ensure_future(cancel(pool, "k1"))
        await asyncio.sleep(0.3)
        assert not cancelling.done()  # waiting on the claim's row lock, not skipping it
        await transaction.commit()
        assert await cancelling == "in_flight"
    assert await table_count(pool, "outbox") == 1


async def test_a_claim_skips_a_row_whose_cancel_has_not_committed(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    async with pool.acquire() as canceller:
        transaction = canceller.transaction()
        await transaction.start()
        assert await canceller.fetchval("SELECT invoice_sync.cancel('shop', 'k1')") == "cancelled"
        assert await claim(store(pool), {"shop": 5}, lease=60, probe_cooldown=60) == []
        await transaction.commit()
    assert await claim(store(pool), {"shop": 5}, lease=60, probe_cooldown=60) == []
    assert await table_count(pool, "cancelled") == 1


async def test_the_cli_store_audits_a_cancel_and_tells_a_repeat_apart(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    results = Results(pool)
    first = await results.invoice_cancel("shop", "k1", reason="customer asked", actor="ops@h")
    again = await results.invoice_cancel("shop", "k1", reason="again", actor="ops@h")
    assert (first.state, first.withdrawn) == ("cancelled", True)
    assert (again.state, again.withdrawn) == ("cancelled", False)
    audit = await pool.fetch(
        "SELECT actor, action, rows, reason FROM invoice_sync.audit ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [
        ("ops@h", "cancel", 1, "customer asked"),
        ("ops@h", "cancel", 0, "again"),
    ]
    kept = await pool.fetchval("SELECT payload FROM invoice_sync.cancelled")
    assert json.loads(kept) == invoice(number="k1")  # kept as it was written


async def test_a_failed_cancel_writes_no_audit_entry(pool: asyncpg.Pool) -> None:
    with pytest.raises(StoreError, match="idempotency_key must not be null"):
        await Results(pool).invoice_cancel("shop", "", reason=None, actor="ops@h")
    assert await table_count(pool, "audit") == 0
