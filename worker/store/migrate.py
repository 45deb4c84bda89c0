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

__all__ = ["MigrationError", "current_versions", "latest_version", "migrate", "schema_version"]
from worker.store.queries import migrations, queries

log = structlog.get_logger(__name__)

# An arbitrary constant shared by every invoice-sync process: the advisory lock's key.
MIGRATION_LOCK = 7_311_202_611

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS invoice_sync;
CREATE TABLE IF NOT EXISTS invoice_sync.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


async def migrate(dsn: str) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    conn = await database.connect(dsn)
    try:
        await database.run(lambda: conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK))
        try:
            return await _apply_pending(conn)
        finally:
            await database.run(
                lambda: conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
            )
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection) -> list[int]:
    await database.run(lambda: conn.execute(_BOOTSTRAP))
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
                await conn.execute(
                    "INSERT INTO invoice_sync.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
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
