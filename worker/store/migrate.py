"""Applies ``sql/migrations`` in order, each once, under an advisory lock.

Replicas may start together: the lock serialises them, and the second finds nothing to do.
Each migration runs in its own transaction with its row in ``schema_migrations``, so a failed
migration leaves no half-applied schema behind.
"""

from __future__ import annotations

import asyncpg
import structlog

from worker.errors import MigrationError
from worker.store import database
from worker.store.queries import migrations, queries

__all__ = ["MigrationError", "current_versions", "latest_version", "migrate", "schema_version"]

log = structlog.get_logger(__name__)

# An arbitrary constant shared by every invoice-sync process: the advisory lock's key.
MIGRATION_LOCK = 7_311_202_611


async def migrate(dsn: str) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    q = queries()
    conn = await database.connect(dsn)
    try:
        await database.run(lambda: conn.execute(q["migrations_lock"], MIGRATION_LOCK))
        try:
            return await _apply_pending(conn)
        finally:
            await database.run(lambda: conn.execute(q["migrations_unlock"], MIGRATION_LOCK))
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection) -> list[int]:
    q = queries()
    await database.run(lambda: conn.execute(q["migrations_schema_create"]))
    await database.run(lambda: conn.execute(q["migrations_table_create"]))
    applied = await current_versions(conn)
    known = {m.version for m in migrations()}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise MigrationError(f"the database has migrations this version does not know: {unknown}")
    done = []
    for migration in migrations():
        if migration.version in applied:
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(q["migrations_record"], migration.version, migration.name)
        except asyncpg.PostgresError as exc:
            raise MigrationError(
                f"migration {migration.version:03d}_{migration.name}: {exc}"
            ) from exc
        log.info("migration.applied", version=migration.version, name=migration.name)
        done.append(migration.version)
    return done


async def current_versions(conn: asyncpg.Connection) -> list[int]:
    rows = await database.run(lambda: conn.fetch(queries()["migrations_applied"]))
    return [row["version"] for row in rows]


async def schema_version(pool: asyncpg.Pool) -> int:
    """The newest migration applied (0 for none), on a connection of ``pool``."""

    async def read() -> int:
        async with pool.acquire() as conn:
            return max(await current_versions(conn), default=0)

    return await database.run(read)


def latest_version() -> int:
    return max((m.version for m in migrations()), default=0)
