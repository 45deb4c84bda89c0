"""A producer login can only enqueue for, and read the results of, the accounts granted to it."""

from __future__ import annotations

import json

import asyncpg

from tests.factories import invoice
from tests.integration.store.roles.access import INSERT_OUTBOX, Logins, assert_denied, connected
from tests.logins import login


async def test_the_producer_enqueues_and_reads_results_but_touches_nothing_else(
    dsn: str, logins: Logins
) -> None:
    body = json.dumps(invoice(number="P-1"))
    conn = await asyncpg.connect(logins.producer)
    try:
        first = await conn.fetchval("SELECT invoice_sync.enqueue('shop', 'p-1', $1::jsonb)", body)
        again = await conn.fetchval("SELECT invoice_sync.enqueue('shop', 'p-1', $1::jsonb)", body)
        assert first == again
        inserted = await conn.fetchval(
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at)"
            " VALUES ('shop', 'p-2', $1::jsonb, now()) RETURNING id",
            body,
        )
        await conn.execute(
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
            " VALUES ('shop', 'p-2', $1::jsonb) ON CONFLICT DO NOTHING",
            body,
        )
        mine = await conn.fetch("SELECT id, idempotency_key FROM invoice_sync.outbox ORDER BY id")
        assert [(r["id"], r["idempotency_key"]) for r in mine] == [
            (first, "p-1"),
            (inserted, "p-2"),
        ]
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.synced") == 0
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.dead_letter") == 0

        for statement in (
            "SELECT payload FROM invoice_sync.outbox",
            "SELECT state, lease_owner FROM invoice_sync.outbox",
            "SELECT * FROM invoice_sync.outbox",
            "UPDATE invoice_sync.outbox SET available_at = now()",
            "DELETE FROM invoice_sync.outbox",
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, state)"
            " VALUES ('shop', 'p-3', '{}', 'running')",
            "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
            " provider_invoice_id, attempts) VALUES (999, 'shop', 'x', 'billclap', '1', 1)",
            "UPDATE invoice_sync.synced SET link = 'x'",
            "DELETE FROM invoice_sync.dead_letter",
            "SELECT * FROM invoice_sync.account_state",
            "SELECT * FROM invoice_sync.rate_bucket",
            "SELECT * FROM invoice_sync.schema_migrations",
            "SELECT * FROM invoice_sync.replica_account",
            "INSERT INTO invoice_sync.producer_account (login, account) VALUES (current_user, 'x')",
            "UPDATE invoice_sync.producer_account SET account = 'x'",
            "CREATE TABLE invoice_sync.mine (id int)",
            "TRUNCATE invoice_sync.outbox",
        ):
            await assert_denied(conn, statement)
    finally:
        await conn.close()


async def test_a_producer_cannot_enqueue_for_an_account_not_granted_to_it(
    dsn: str, logins: Logins
) -> None:
    body = json.dumps(invoice(number="G-1"))
    conn = await asyncpg.connect(logins.producer)
    try:
        for statement in (
            "SELECT invoice_sync.enqueue('other', 'g-1', $1::jsonb)",
            "SELECT invoice_sync.enqueue('other', 'g-1', $1::jsonb, now() + interval '1 hour')",
            INSERT_OUTBOX + " VALUES ('other', 'g-1', $1::jsonb)",
            INSERT_OUTBOX + " VALUES ('other', 'g-1', $1::jsonb) ON CONFLICT DO NOTHING",
        ):
            await assert_denied(conn, statement, body)
        assert await conn.fetchval("SELECT invoice_sync.enqueue('shop', 'g-1', $1::jsonb)", body)
    finally:
        await conn.close()
    # Another login is granted 'other' and nothing else; a login with no grant writes nothing.
    async with login(dsn, "producer", ("other",)) as other, login(dsn, "producer") as bare:
        other_conn = await asyncpg.connect(other)
        bare_conn = await asyncpg.connect(bare)
        try:
            await other_conn.execute(INSERT_OUTBOX + " VALUES ('other', 'g-2', $1::jsonb)", body)
            await assert_denied(other_conn, INSERT_OUTBOX + " VALUES ('shop', 'g-3', $1)", body)
            await assert_denied(bare_conn, INSERT_OUTBOX + " VALUES ('shop', 'g-4', $1)", body)
        finally:
            await other_conn.close()
            await bare_conn.close()
    written = await connected(
        dsn,
        lambda c: c.fetch("SELECT account, idempotency_key FROM invoice_sync.outbox ORDER BY 2"),
    )
    assert [tuple(r) for r in written] == [("shop", "g-1"), ("other", "g-2")]


async def seed_results(dsn: str) -> None:
    """One pending, one synced and one dead-lettered row for each of 'shop' and 'other'."""

    async def seed(conn: asyncpg.Connection) -> None:
        for n, account in enumerate(("shop", "other")):
            await conn.execute("SELECT invoice_sync.enqueue($1, 'waiting', '{}'::jsonb)", account)
            await conn.execute(
                "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
                " provider_invoice_id, attempts, response)"
                " VALUES ($1, $2, 'done', 'billclap', 'INV-1', 1, '{\"secret\": 1}')",
                100 + n,
                account,
            )
            await conn.execute(
                "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key,"
                " payload, reason, error, attempts, response)"
                " VALUES ($1, $2, 'dead', '{\"customer\": 1}', 'rejected', 'no', 1, '{}')",
                200 + n,
                account,
            )

    await connected(dsn, seed)


async def test_a_producer_reads_only_the_rows_of_its_accounts(dsn: str, logins: Logins) -> None:
    await seed_results(dsn)
    conn = await asyncpg.connect(logins.producer)
    try:
        for table in ("outbox", "synced", "dead_letter"):
            rows = await conn.fetch(f"SELECT account FROM invoice_sync.{table}")
            assert [r["account"] for r in rows] == ["shop"], table
        # Nor can it learn about another account's keys through enqueue(), waiting or synced.
        for key in ("waiting", "done"):
            await assert_denied(conn, "SELECT invoice_sync.enqueue('other', $1, '{}'::jsonb)", key)
        # Nor by acting as the group role itself, which no account is granted to.
        await conn.execute("SET ROLE invoice_sync_producer")
        for table in ("outbox", "synced", "dead_letter"):
            assert await conn.fetch(f"SELECT account FROM invoice_sync.{table}") == [], table
    finally:
        await conn.close()


async def test_a_producer_reads_results_but_not_payloads_or_provider_responses(
    dsn: str, logins: Logins
) -> None:
    await seed_results(dsn)
    conn = await asyncpg.connect(logins.producer)
    try:
        for statement in (
            "SELECT payload FROM invoice_sync.dead_letter",
            "SELECT response FROM invoice_sync.dead_letter",
            "SELECT response FROM invoice_sync.synced",
            "SELECT * FROM invoice_sync.synced",
            "SELECT * FROM invoice_sync.dead_letter",
        ):
            await assert_denied(conn, statement)
        synced = await conn.fetchrow(
            "SELECT outbox_id, account, idempotency_key, provider, provider_invoice_id,"
            " invoice_number, link, pdf_url, attempts, recovered, synced_at"
            " FROM invoice_sync.synced"
        )
        dead = await conn.fetchrow(
            "SELECT outbox_id, account, idempotency_key, reason, error, http_status, attempts,"
            " first_attempt_at, dead_at, replayed_at, replayed_to FROM invoice_sync.dead_letter"
        )
    finally:
        await conn.close()
    assert synced is not None
    assert synced["provider_invoice_id"] == "INV-1"
    assert dead is not None
    assert dead["reason"] == "rejected"


async def test_a_transaction_held_open_cannot_backdate_its_rows(logins: Logins) -> None:
    # The clamp is the time of the insert, not the transaction's start: otherwise a producer
    # that holds a transaction open moves its rows ahead by as long as it held it.
    body = json.dumps(invoice(number="T-2"))
    conn = await asyncpg.connect(logins.producer)
    try:
        async with conn.transaction():
            started = await conn.fetchval("SELECT now()")
            await conn.execute("SELECT pg_sleep(1.5)")
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', 'held', $1::jsonb,"
                " clock_timestamp() - interval '1 second')",
                body,
            )
            stored = await conn.fetchval(
                "SELECT available_at FROM invoice_sync.outbox WHERE idempotency_key = 'held'"
            )
    finally:
        await conn.close()
    assert (stored - started).total_seconds() >= 1.4


async def test_a_producer_cannot_schedule_a_row_in_the_past(dsn: str, logins: Logins) -> None:
    body = json.dumps(invoice(number="T-1"))
    conn = await asyncpg.connect(logins.producer)
    try:
        async with conn.transaction():
            now = await conn.fetchval("SELECT now()")
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', 'past-1', $1::jsonb, now() - interval '1 day')",
                body,
            )
            await conn.execute(
                INSERT_OUTBOX.replace(")", ", available_at)")
                + " VALUES ('shop', 'past-2', $1::jsonb, now() - interval '1 year')",
                body,
            )
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', 'later', $1::jsonb, now() + interval '1 hour')",
                body,
            )
            rows = await conn.fetch("SELECT idempotency_key, available_at FROM invoice_sync.outbox")
    finally:
        await conn.close()
    when = {r["idempotency_key"]: r["available_at"] for r in rows}
    assert when["past-1"] >= now
    assert when["past-2"] >= now
    assert (when["later"] - now).total_seconds() == 3600
    # The schema owner (an operator backfilling, a test) is trusted with the past.
    await connected(
        dsn,
        lambda c: c.execute(
            "SELECT invoice_sync.enqueue('shop', 'owner', '{}'::jsonb, now() - interval '1 day')"
        ),
    )
    behind = await connected(
        dsn,
        lambda c: c.fetchval(
            "SELECT available_at < now() FROM invoice_sync.outbox WHERE idempotency_key = 'owner'"
        ),
    )
    assert behind is True


async def test_the_worker_keeps_the_past_in_a_bulk_insert(logins: Logins) -> None:
    # `invoice-sync enqueue` inserts as the worker, every row at the load's now(): earlier than
    # the insert's clock, and not a producer's, so not clamped (a replay keeps its place too).
    conn = await asyncpg.connect(logins.worker)
    try:
        async with conn.transaction():
            now = await conn.fetchval("SELECT now()")
            await conn.execute("SELECT pg_sleep(0.2)")
            await conn.execute(
                "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at)"
                " SELECT 'shop', 'bulk-' || i, $1::jsonb, now() FROM generate_series(1, 3) i",
                json.dumps(invoice(number="B-1")),
            )
            when = await conn.fetch(
                "SELECT available_at FROM invoice_sync.outbox WHERE idempotency_key LIKE 'bulk-%'"
            )
    finally:
        await conn.close()
    assert [r["available_at"] for r in when] == [now] * 3
