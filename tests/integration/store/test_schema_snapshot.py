"""sql/schema.sql is the schema the migrations build: applied to an empty database, it gives the
same catalog (columns, constraints, indexes, functions, triggers, policies, privileges) as
`invoice-sync migrate` does. When a migration changes the schema, this fails until schema.sql
shows the change too, and lists each difference."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.store.schema_catalog import CATALOG, describe, differences
from tests.logins import ROLES_SQL
from worker.store import migrate
from worker.store.queries import sql_dir
from worker.testing.postgres import admin, with_database

# Changes a new migration could make, each in a different part of the catalog.
CHANGES = {
    "column": "ALTER TABLE invoice_sync.outbox ADD COLUMN priority integer NOT NULL DEFAULT 0",
    "default": "ALTER TABLE invoice_sync.synced ALTER COLUMN recovered SET DEFAULT true",
    "constraint": "ALTER TABLE invoice_sync.rate_bucket ADD CHECK (granted >= 0)",
    "index": "CREATE INDEX outbox_created_idx ON invoice_sync.outbox (created_at)",
    "function": "CREATE OR REPLACE FUNCTION invoice_sync.outbox_notify() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    "trigger": "DROP TRIGGER outbox_notify ON invoice_sync.outbox",
    "policy": "DROP POLICY producer_accounts ON invoice_sync.synced",
    "privilege": "GRANT EXECUTE ON FUNCTION invoice_sync.outbox_notify() TO PUBLIC",
    "table": "CREATE TABLE invoice_sync.notes (id bigint PRIMARY KEY)",
}


@pytest.fixture
async def second_empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    name = f"invoice_sync_s_{uuid.uuid4().hex[:10]}"
    await admin(server_dsn, f'CREATE DATABASE "{name}"')
    yield with_database(server_dsn, name)
    await admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_schema_sql_builds_what_the_migrations_build(
    empty_dsn: str, second_empty_dsn: str
) -> None:
    # The group roles exist first (roles are cluster-wide; roles.sql's opening block creates
    # them), so the grants migrations make to groups that exist (007, 008, 010) are compared
    # whichever test ran before. Both built here, a moment apart: a role created in between
    # would make them differ.
    await execute(
        empty_dsn, ROLES_SQL.read_text(encoding="utf-8").split("-- Start from nothing")[0]
    )
    await migrate.migrate(empty_dsn)
    await execute(second_empty_dsn, (sql_dir() / "schema.sql").read_text(encoding="utf-8"))
    migrated, snapshot = await describe(empty_dsn), await describe(second_empty_dsn)
    assert differences(migrated, snapshot) == []
    # Each catalog query finds what it is meant to compare: none compares two empty lists. The
    # only column grant a migration makes (011) goes to the producer group, where it exists.
    producers = await admin_fetchval(
        empty_dsn, "SELECT count(*) FROM pg_roles WHERE rolname = 'invoice_sync_producer'"
    )
    empty = ["comments"] if producers else ["column grants", "comments"]
    assert [name for name in CATALOG if not migrated[name]] == empty


async def admin_fetchval(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_a_change_schema_sql_lacks_is_a_difference(dsn: str, change: str) -> None:
    before = await describe(dsn)
    await execute(dsn, change)
    assert differences(before, await describe(dsn)), change
