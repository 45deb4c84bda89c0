"""result() and cancel() for a producer login (migration 010): its granted accounts only, and
for any other account `unknown`, whether or not the key exists there."""

from __future__ import annotations

import json

import asyncpg

from tests.factories import invoice
from tests.integration.store.roles.access import Logins, assert_denied, connected
from tests.integration.store.roles.test_producer import seed_results
from tests.logins import login


async def states(conn: asyncpg.Connection, account: str) -> dict[str, str]:
    found = {}
    for key in ("waiting", "done", "dead", "never"):
        found[key] = await conn.fetchval(
            "SELECT state FROM invoice_sync.result($1, $2)", account, key
        )
    return found


async def test_a_producer_sees_results_of_its_accounts_and_unknown_elsewhere(
    dsn: str, logins: Logins
) -> None:
    await seed_results(dsn)
    conn = await asyncpg.connect(logins.producer)
    try:
        assert await states(conn, "shop") == {
            "waiting": "pending",
            "done": "synced",
            "dead": "dead",
            "never": "unknown",
        }
        assert set((await states(conn, "other")).values()) == {"unknown"}
        # Cancelling another account's key changes nothing and says nothing.
        assert await conn.fetchval("SELECT invoice_sync.cancel('other', 'waiting')") == "unknown"
        # SET ROLE cannot widen what the login may see: the check is on the session's login.
        await conn.execute("SET ROLE invoice_sync_producer")
        assert (await states(conn, "shop"))["done"] == "synced"
        assert set((await states(conn, "other")).values()) == {"unknown"}
        await conn.execute("RESET ROLE")
        assert await conn.fetchval("SELECT invoice_sync.cancel('shop', 'waiting', 'x')") == (
            "cancelled"
        )
    finally:
        await conn.close()
    left = await connected(
        dsn,
        lambda c: c.fetch(
            "SELECT account FROM invoice_sync.outbox WHERE idempotency_key = 'waiting'"
        ),
    )
    assert [r["account"] for r in left] == ["other"]


async def test_a_producer_reads_its_cancelled_rows_but_not_their_payloads(
    dsn: str, logins: Logins
) -> None:
    body = json.dumps(invoice(number="C-1"))
    conn = await asyncpg.connect(logins.producer)
    try:
        first = await conn.fetchval("SELECT invoice_sync.enqueue('shop', 'c-1', $1::jsonb)", body)
        assert await conn.fetchval("SELECT invoice_sync.cancel('shop', 'c-1', 'gone')") == (
            "cancelled"
        )
        # The key stays withdrawn: enqueue() answers with the cancelled row's id.
        again = await conn.fetchval("SELECT invoice_sync.enqueue('shop', 'c-1', $1::jsonb)", body)
        assert again == first
        row = await conn.fetchrow(
            "SELECT account, reason, cancelled_by FROM invoice_sync.cancelled"
        )
        assert (row["account"], row["reason"]) == ("shop", "gone")
        await assert_denied(conn, "SELECT payload FROM invoice_sync.cancelled")
        await assert_denied(conn, "DELETE FROM invoice_sync.cancelled")
    finally:
        await conn.close()
    async with login(dsn, "producer", ("other",)) as other:
        other_conn = await asyncpg.connect(other)
        try:
            assert await other_conn.fetch("SELECT account FROM invoice_sync.cancelled") == []
            assert (
                await other_conn.fetchval("SELECT state FROM invoice_sync.result('shop', 'c-1')")
                == "unknown"
            )
        finally:
            await other_conn.close()


async def test_explain_analyze_of_result_does_not_tell_whether_a_key_exists(
    dsn: str, logins: Logins
) -> None:
    """The row-level security side channel (row counts in a plan) stays closed through the
    function: its body's plan is not shown, and the call's plan is the same either way."""
    await seed_results(dsn)
    conn = await asyncpg.connect(logins.producer)
    try:
        plans = []
        for key in ("waiting", "never"):
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON)"
                " SELECT * FROM invoice_sync.result('other', $1)",
                key,
            )
            plans.append(json.loads(plan) if isinstance(plan, str) else plan)
        assert plans[0] == plans[1]
        assert "outbox" not in json.dumps(plans[0])
    finally:
        await conn.close()


async def test_the_worker_login_may_call_result_and_cancel(dsn: str, logins: Logins) -> None:
    await seed_results(dsn)
    conn = await asyncpg.connect(logins.worker)
    try:
        assert (await states(conn, "other"))["done"] == "synced"
        assert await conn.fetchval("SELECT invoice_sync.cancel('other', 'waiting')") == "cancelled"
    finally:
        await conn.close()
