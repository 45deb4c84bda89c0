"""Database fixtures: a real PostgreSQL, never a mock.

The server is ``INVOICE_SYNC_TEST_DATABASE_URL`` when set, else the local one on 127.0.0.1:5432
when it answers, else a throwaway embedded server started for the session. A template database
is migrated once per session; each test gets its own copy (``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from worker import migrate
from worker.config import DEFAULT_TEST_DATABASE_URL
from worker.embedded import EmbeddedPostgres


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointed at another database (keeps ?host= for Unix sockets)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    explicit = os.environ.get("INVOICE_SYNC_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if asyncio.run(_reachable(DEFAULT_TEST_DATABASE_URL)):
        yield DEFAULT_TEST_DATABASE_URL
        return
    with EmbeddedPostgres() as embedded:
        yield embedded.start()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    name = f"invoice_sync_tpl_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate.migrate(with_database(server_dsn, name)))
    yield name
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"invoice_sync_t_{uuid.uuid4().hex[:10]}"
    await _admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(server_dsn, name)
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no schema, for migration tests."""
    name = f"invoice_sync_e_{uuid.uuid4().hex[:10]}"
    await _admin(server_dsn, f'CREATE DATABASE "{name}"')
    yield with_database(server_dsn, name)
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=5)
    assert pool is not None
    yield pool
    await pool.close()
