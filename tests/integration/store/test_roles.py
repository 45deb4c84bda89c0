"""sql/roles.sql and migration 007: a producer login can only enqueue for, and read the results
of, the accounts granted to it; the worker runs the daemon."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice
from tests.logins import ROLES_SQL, apply_roles, login
from worker.store import migrate
from worker.store.migrate import latest_version
from worker.store.queries import migrations


@dataclass(frozen=True)
class Logins:
    producer: str
    """Granted the account ``shop`` only."""
    worker: str


@pytest.fixture
async def logins(dsn: str) -> AsyncIterator[Logins]:
    """roles.sql applied to a fresh database, and one LOGIN user in each group role."""
    await apply_roles(dsn)
    async with login(dsn, "producer", ("shop",)) as producer, login(dsn, "worker") as worker:
        yield Logins(producer=producer, worker=worker)


async def connected(dsn: str, action: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await action(conn)
    finally:
        await conn.close()


async def assert_denied(conn: asyncpg.Connection, statement: str, *args: object) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute(statement, *args)


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


INSERT_OUTBOX = "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"


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
                100 + n, account,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key,"
                " payload, reason, error, attempts, response)"
                " VALUES ($1, $2, 'dead', '{\"customer\": 1}', 'rejected', 'no', 1, '{}')",
                200 + n, account,
            )  # fmt: skip

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
    assert when["past-1"] == now
    assert when["past-2"] == now
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
        assert "invoice_sync.enqueue(text,text,jsonb,timestamp with time zone)" in {
            r["function"] for r in rows
        }
        assert [r["function"] for r in rows if r["public_may_execute"]] == [], step


GRANTS_MIGRATION = 7


async def migrate_before_grants(dsn: str) -> None:
    """The schema as it was before producer grants, applied as `migrate` would have."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE SCHEMA invoice_sync; CREATE TABLE invoice_sync.schema_migrations"
            " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz)"
        )
        for step in migrations():
            if step.version < GRANTS_MIGRATION:
                await conn.execute(step.sql)
                await conn.execute(
                    "INSERT INTO invoice_sync.schema_migrations VALUES ($1, $2, now())",
                    step.version, step.name,
                )  # fmt: skip
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


def account(url: str) -> str:
    return "\n".join(
        [
            "[accounts.shop]",
            'provider = "billclap"',
            f'base_url = "{url}"',
            f'token = "{TOKEN}"',
            'rate_limit = "2000/second"',
            "concurrency = 8",
        ]
    )


@pytest.mark.e2e
async def test_the_daemon_runs_as_the_worker_and_syncs_what_the_producer_enqueued(
    dsn: str, logins: Logins, tmp_path: Path
) -> None:
    async def produce(conn: asyncpg.Connection) -> None:
        for i in range(20):
            body = json.dumps(invoice(number=f"RP-{i}"))
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)", f"rp-{i}", body
            )

    await connected(logins.producer, produce)
    bulk = "".join(
        json.dumps(
            {"account": "shop", "idempotency_key": f"rb-{i}", "payload": invoice(number=f"RB-{i}")}
        )
        + "\n"
        for i in range(10)
    )
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(tmp_path / "worker.toml", logins.worker, account(url))
        loaded = cli("enqueue", "-", config=config, stdin=bulk)
        assert loaded.returncode == 0, loaded.stderr
        assert cli("accounts", "pause", "shop", config=config).returncode == 0
        assert cli("accounts", "resume", "shop", config=config).returncode == 0
        run = cli("run", "--drain", config=config, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        created = get_json(url + "/_sandbox/created")["created"]
        status = cli("status", "--json", config=config)
        assert status.returncode == 0, status.stderr

    assert len(created) == 30
    assert json.loads(status.stdout)["accounts"]["shop"]["synced"] == 30
    # The worker role announced the account it works (the KEDA query and `status` read it).
    assert json.loads(status.stdout)["accounts"]["shop"]["configured"] is True
    producer_view = await connected(
        logins.producer,
        lambda c: c.fetch("SELECT idempotency_key, provider_invoice_id FROM invoice_sync.synced"),
    )
    assert len(producer_view) == 30
    assert await connected(logins.producer, lambda c: c.fetchval(
        "SELECT count(*) FROM invoice_sync.outbox")) == 0  # fmt: skip
