"""The claim's first step: the walk over accounts with pending rows (``outbox_ready``)."""

from __future__ import annotations

import asyncpg

from tests.factories import enqueue
from worker.store.accounts import AccountStore
from worker.store.outbox import Outbox


async def walk(
    pool: asyncpg.Pool, after: str = "", steps: int = 100, wanted: int = 100
) -> list[str]:
    return (
        await Outbox(pool, worker_id="w").outbox_ready(after=after, steps=steps, wanted=wanted)
    ).ready


async def test_only_accounts_with_due_rows_not_paused_or_throttled_are_ready(
    pool: asyncpg.Pool,
) -> None:
    for account in ("a", "b", "c", "d", "e"):
        await enqueue(pool, account, f"{account}-1")
    await pool.execute(
        "UPDATE invoice_sync.outbox SET available_at = now() + interval '1 hour' WHERE account = 'b'"
    )
    await AccountStore(pool).account_pause("c", "by hand")
    await pool.execute(
        "INSERT INTO invoice_sync.account_state (account, throttled_until)"
        " VALUES ('d', now() + interval '1 hour')"
    )
    # A paused account whose probe is due is ready: the claim takes its probe row.
    await pool.execute(
        "INSERT INTO invoice_sync.account_state (account, paused, pause_reason, probe_at)"
        " VALUES ('e', true, 'auth_failed', now() - interval '1 second')"
    )
    assert await walk(pool) == ["a", "e"]


async def test_the_walk_starts_after_its_place_and_goes_round_once(pool: asyncpg.Pool) -> None:
    for account in ("a", "b", "c", "d"):
        await enqueue(pool, account, f"{account}-1")
    assert await walk(pool, after="b") == ["c", "d", "a", "b"]
    assert await walk(pool, after="b", wanted=3) == ["c", "d", "a"]
    assert await walk(pool, after="zz") == ["a", "b", "c", "d"]


async def test_the_walk_is_bounded_and_says_when_it_was_cut_short(pool: asyncpg.Pool) -> None:
    for i in range(10):
        await enqueue(pool, f"acct-{i}", "k")
    result = await Outbox(pool, worker_id="w").outbox_ready(after="", steps=4, wanted=100)
    assert result.walked == ["acct-0", "acct-1", "acct-2", "acct-3"]
    assert result.cut_short
    whole = await Outbox(pool, worker_id="w").outbox_ready(after="", steps=100, wanted=100)
    assert len(whole.walked) == 10
    assert not whole.cut_short


async def test_idle_accounts_cost_the_walk_nothing(pool: asyncpg.Pool) -> None:
    """Accounts known to the database (state rows, synced history) without pending rows are
    never visited: the walk reads only the claim index of pending rows."""
    await pool.execute(
        "INSERT INTO invoice_sync.account_state (account)"
        " SELECT 'idle-' || i FROM generate_series(1, 5000) AS i"
    )
    await enqueue(pool, "busy", "k")
    result = await Outbox(pool, worker_id="w").outbox_ready(after="", steps=100, wanted=100)
    assert result.walked == ["busy"]
