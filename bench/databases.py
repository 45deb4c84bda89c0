"""Where the bench's databases live: a fresh database per scenario on one server.

The server is ``INVOICE_SYNC_BENCH_DATABASE_URL`` when set, else the local one on
127.0.0.1:5432 when it answers, else a throwaway embedded server (as ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg

from worker.store import migrate
from worker.testing.postgres import admin, scratch_server, with_database

ENV = "INVOICE_SYNC_BENCH_DATABASE_URL"


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The server's admin URL for the whole run (an embedded one is stopped afterwards)."""
    with scratch_server(ENV) as url:
        yield url


@contextlib.asynccontextmanager
async def scratch(server_dsn: str, label: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A fresh database (migrated to the latest schema unless ``migrated=False``), dropped after."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    await admin(server_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    try:
        if migrated:
            await migrate.migrate(dsn)
        yield dsn
    finally:
        await admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return version
