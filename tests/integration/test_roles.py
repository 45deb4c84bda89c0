"""sql/roles.sql: the producer can only enqueue and read results; the worker runs the daemon."""

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
from tests.logins import apply_roles, login
from worker.migrate import latest_version


@dataclass(frozen=True)
class Logins:
    producer: str
    worker: str


@pytest.fixture
async def logins(dsn: str) -> AsyncIterator[Logins]:
    """roles.sql applied to a fresh database, and one LOGIN user in each group role."""
    await apply_roles(dsn)
    async with login(dsn, "producer") as producer, login(dsn, "worker") as worker:
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
            "CREATE TABLE invoice_sync.mine (id int)",
            "TRUNCATE invoice_sync.outbox",
        ):
            await assert_denied(conn, statement)
    finally:
        await conn.close()


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
    producer_view = await connected(
        logins.producer,
        lambda c: c.fetch("SELECT idempotency_key, provider_invoice_id FROM invoice_sync.synced"),
    )
    assert len(producer_view) == 30
    assert await connected(logins.producer, lambda c: c.fetchval(
        "SELECT count(*) FROM invoice_sync.outbox")) == 0  # fmt: skip
