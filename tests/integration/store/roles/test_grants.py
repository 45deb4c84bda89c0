"""Migration 007 and sql/roles.sql: what PUBLIC, the producer and the worker may do, on upgrade."""

from __future__ import annotations

import asyncpg

from tests.integration.store.roles.access import INSERT_OUTBOX, Logins, assert_denied, connected
from tests.logins import ROLES_SQL, apply_roles, login
from tests.migrations import migrate_before
from worker.store import migrate
from worker.store.migrate import latest_version

PUBLIC_EXECUTABLE = """
SELECT p.oid::regprocedure::text AS function,
       p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) a
                                    WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
           AS public_may_execute
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'invoice_sync'
 ORDER BY 1
"""


async def test_public_may_execute_no_function_of_the_schema(dsn: str) -> None:
    """Migrations revoke it (and roles.sql again); the group roles get only what they need."""
    for step in ("migrated", "roles applied"):
        if step == "roles applied":
            await apply_roles(dsn)
        rows = await connected(dsn, lambda c: c.fetch(PUBLIC_EXECUTABLE))
        assert "invoice_sync.enqueue(text,text,jsonb,timestamp with time zone,text)" in {
            r["function"] for r in rows
        }
        assert [r["function"] for r in rows if r["public_may_execute"]] == [], step


GRANTS_MIGRATION = 7


async def migrate_before_grants(dsn: str) -> None:
    """The schema as it was before producer grants, applied as `migrate` would have."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_before(conn, GRANTS_MIGRATION)
        await conn.execute(ROLES_SQL.read_text().split("-- Start from nothing")[0])
    finally:
        await conn.close()


async def test_upgrading_keeps_existing_producers_writing_the_accounts_they_used(
    empty_dsn: str,
) -> None:
    """Migration 007 must not fail the order transactions of producers that work today, nor
    stop the new replicas before sql/roles.sql is rerun."""
    await migrate_before_grants(empty_dsn)
    async with login(empty_dsn, "producer") as before:
        await connected(
            empty_dsn,
            lambda c: c.execute(
                "SELECT invoice_sync.enqueue('shop', 'old', '{}'::jsonb);"
                "SELECT invoice_sync.enqueue('outlet', 'old', '{}'::jsonb)"
            ),
        )
        await migrate.migrate(empty_dsn)
        # Replicas of the new version announce their accounts before roles.sql is rerun.
        assert await connected(
            empty_dsn,
            lambda c: c.fetchval(
                "SELECT has_table_privilege('invoice_sync_worker',"
                " 'invoice_sync.replica_account', 'SELECT, INSERT, UPDATE')"
            ),
        )
        await apply_roles(empty_dsn)
        async with login(empty_dsn, "producer") as after:
            old, new = await asyncpg.connect(before), await asyncpg.connect(after)
            try:
                for account in ("shop", "outlet"):
                    await old.execute(INSERT_OUTBOX + " VALUES ($1, 'new', '{}')", account)
                await assert_denied(new, INSERT_OUTBOX + " VALUES ('shop', 'x', '{}')")
            finally:
                await old.close()
                await new.close()


async def test_the_worker_cannot_change_the_schema_or_rewrite_history(
    dsn: str, logins: Logins
) -> None:
    conn = await asyncpg.connect(logins.worker)
    try:
        # What the daemon does at start-up: the schema check, LISTEN, the advisory lock.
        assert (
            await conn.fetchval("SELECT max(version) FROM invoice_sync.schema_migrations")
            == latest_version()
        )
        await conn.execute("LISTEN invoice_sync_outbox")
        assert await conn.fetchval("SELECT pg_try_advisory_lock(7311202611)")
        for statement in (
            "CREATE TABLE invoice_sync.mine (id int)",
            "DROP TABLE invoice_sync.synced",
            "ALTER TABLE invoice_sync.outbox ADD COLUMN x int",
            "UPDATE invoice_sync.synced SET link = 'x'",
            "DELETE FROM invoice_sync.synced",
            "INSERT INTO invoice_sync.schema_migrations (version, name) VALUES (99, 'x')",
            "DELETE FROM invoice_sync.schema_migrations",
            "INSERT INTO invoice_sync.producer_account (login, account) VALUES ('shop_web', 'x')",
            "DELETE FROM invoice_sync.producer_account",
            "TRUNCATE invoice_sync.outbox",
            # The audit log is append-only: an operator's action cannot be edited away.
            "UPDATE invoice_sync.audit SET actor = 'someone else'",
            "DELETE FROM invoice_sync.audit",
        ):
            await assert_denied(conn, statement)
    finally:
        await conn.close()


async def grants(conn: asyncpg.Connection) -> list[tuple[str, ...]]:
    rows = await conn.fetch(
        """
        SELECT grantee, table_name, privilege_type, '' AS column_name
          FROM information_schema.role_table_grants
         WHERE table_schema = 'invoice_sync' AND grantee LIKE 'invoice_sync_%'
        UNION ALL
        SELECT grantee, table_name, privilege_type, column_name
          FROM information_schema.column_privileges
         WHERE table_schema = 'invoice_sync' AND grantee LIKE 'invoice_sync_%'
         ORDER BY 1, 2, 3, 4
        """
    )
    return [tuple(r) for r in rows]


async def test_roles_sql_is_rerunnable_and_covers_every_table(dsn: str) -> None:
    await apply_roles(dsn)
    before = await connected(dsn, grants)
    await apply_roles(dsn)
    assert await connected(dsn, grants) == before
    # A migration that adds a table must come with a grant here, or the worker breaks at runtime.
    tables = await connected(
        dsn,
        lambda c: c.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'invoice_sync' ORDER BY 1"
        ),
    )
    granted = {(g[0], g[1]) for g in before}
    assert {t["tablename"] for t in tables} == {
        t for (who, t) in granted if who == "invoice_sync_worker"
    }
    assert ("invoice_sync_producer", "account_state") not in granted


ADD_ACCOUNT = "INSERT INTO invoice_sync.account (name, provider, updated_by) VALUES ('x', 'b', 'w')"


async def test_the_producer_cannot_see_the_account_table_the_worker_reads_and_writes(
    logins: Logins,
) -> None:
    """Ciphertexts are the worker's (replicas read them, the CLI writes them); a producer
    login may not even read a name."""

    async def as_producer(conn: asyncpg.Connection) -> None:
        await assert_denied(conn, "SELECT name FROM invoice_sync.account")
        await assert_denied(conn, ADD_ACCOUNT)
        await assert_denied(conn, "DELETE FROM invoice_sync.account")

    async def as_worker(conn: asyncpg.Connection) -> None:
        await conn.execute(ADD_ACCOUNT)
        await conn.execute("UPDATE invoice_sync.account SET enabled = false")
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.account") == 1
        await conn.execute("DELETE FROM invoice_sync.account")

    await connected(logins.producer, as_producer)
    await connected(logins.worker, as_worker)
