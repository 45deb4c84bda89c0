import asyncio

import asyncpg
import pytest

from worker.store import migrate
from worker.store.queries import migrations, queries


async def test_migrate_applies_everything_once(empty_dsn: str) -> None:
    first = await migrate.migrate(empty_dsn)
    second = await migrate.migrate(empty_dsn)
    assert first == [m.version for m in migrations()]
    assert second == []
    conn = await asyncpg.connect(empty_dsn)
    try:
        tables = {
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'invoice_sync'"
            )
        }
    finally:
        await conn.close()
    assert {"outbox", "synced", "dead_letter", "account_state", "schema_migrations"} <= tables


async def test_concurrent_migrations_do_not_collide(empty_dsn: str) -> None:
    results = await asyncio.gather(*(migrate.migrate(empty_dsn) for _ in range(4)))
    applied = sorted(v for result in results for v in result)
    assert applied == [m.version for m in migrations()]


async def test_every_named_query_matches_the_migrated_schema(dsn: str) -> None:
    """Preparing a statement makes PostgreSQL resolve every table, column and type in it."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(queries()["enqueue_staging_create"])
            for name, sql in queries().items():
                if name == "enqueue_staging_create":
                    continue
                await conn.prepare(sql)
    finally:
        await conn.close()


async def test_unknown_migration_in_database_is_refused(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO invoice_sync.schema_migrations (version, name) VALUES (999, 'future')"
        )
    finally:
        await conn.close()
    with pytest.raises(migrate.MigrationError, match="999"):
        await migrate.migrate(dsn)
