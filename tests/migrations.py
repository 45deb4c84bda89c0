"""Upgrade tests start from an older schema: the migrations before a version, applied and
recorded as ``invoice-sync migrate`` applies them."""

from __future__ import annotations

import asyncpg

from worker.store.queries import migrations


async def migrate_before(conn: asyncpg.Connection, version: int) -> None:
    """Apply the migrations numbered below ``version`` to an empty database, each recorded in
    ``schema_migrations``, so that ``migrate`` then applies ``version`` and those after it."""
    await conn.execute(
        "CREATE SCHEMA invoice_sync; CREATE TABLE invoice_sync.schema_migrations"
        " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz)"
    )
    for step in migrations():
        if step.version < version:
            await conn.execute(step.sql)
            await conn.execute(
                "INSERT INTO invoice_sync.schema_migrations VALUES ($1, $2, now())",
                step.version,
                step.name,
            )
