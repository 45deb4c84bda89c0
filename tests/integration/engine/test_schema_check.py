"""`run` checks the schema before it claims anything: missing, behind, or unreachable, each said
as what it is."""

from __future__ import annotations

import asyncpg
import pytest

from worker.engine.daemon import _check_schema
from worker.errors import StoreError
from worker.store import migrate
from worker.store.database import StoreUnavailableError
from worker.store.queries import migrations


async def test_a_database_without_the_schema_is_told_to_migrate(empty_dsn: str) -> None:
    pool = await asyncpg.create_pool(empty_dsn, min_size=1, max_size=1)
    try:
        with pytest.raises(StoreError, match="schema is missing: run `invoice-sync migrate`"):
            await _check_schema(pool)
    finally:
        await pool.close()


async def test_a_schema_behind_says_at_which_version_it_is(empty_dsn: str) -> None:
    await migrate.migrate(empty_dsn)
    latest = migrate.latest_version()
    previous = sorted(m.version for m in migrations())[-2]  # numbers may have gaps
    pool = await asyncpg.create_pool(empty_dsn, min_size=1, max_size=1)
    try:
        await _check_schema(pool)  # up to date: no complaint
        await pool.execute("DELETE FROM invoice_sync.schema_migrations WHERE version = $1", latest)
        with pytest.raises(StoreError, match=f"at version {previous}, this worker needs {latest}"):
            await _check_schema(pool)
    finally:
        await pool.close()


async def test_an_unreachable_database_is_not_reported_as_a_missing_schema(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    await pool.close()
    with pytest.raises(StoreUnavailableError) as raised:
        await _check_schema(pool)
    assert "schema is missing" not in str(raised.value)
