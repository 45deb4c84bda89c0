"""Where the bench's databases live: a fresh database per scenario on one server.

The server is ``INVOICE_SYNC_BENCH_DATABASE_URL`` when set, else the local one on
127.0.0.1:5432 when it answers, else a throwaway embedded server (as ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from worker import migrate
from worker.config import DEFAULT_TEST_DATABASE_URL
from worker.embedded import EmbeddedPostgres

ENV = "INVOICE_SYNC_BENCH_DATABASE_URL"


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointed at another database (keeps ?host= for Unix sockets)."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The server's admin URL for the whole run (an embedded one is stopped afterwards)."""
    explicit = os.environ.get(ENV)
    if explicit:
        yield explicit
        return
    import asyncio  # noqa: PLC0415 - only this branch needs a loop of its own

    if asyncio.run(_reachable(DEFAULT_TEST_DATABASE_URL)):
        yield DEFAULT_TEST_DATABASE_URL
        return
    with EmbeddedPostgres() as embedded:
        yield embedded.start()


async def admin(server_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


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
