"""Database fixtures: a real PostgreSQL, never a mock.

The server is ``INVOICE_SYNC_TEST_DATABASE_URL`` when set, else the local one on 127.0.0.1:5432
when it answers, else a throwaway embedded server started for the session. A template database
is migrated once per session; each test gets its own copy (``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import structlog

from worker.logs import DEBUG, LIBRARY_BRIDGE
from worker.store import migrate
from worker.testing.postgres import admin, scratch_server, with_database


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    with scratch_server("INVOICE_SYNC_TEST_DATABASE_URL") as url:
        yield url


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    name = f"invoice_sync_tpl_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(server_dsn, f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate.migrate(with_database(server_dsn, name)))
    yield name
    asyncio.run(admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"invoice_sync_t_{uuid.uuid4().hex[:10]}"
    await admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(server_dsn, name)
    await admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no schema, for migration tests."""
    name = f"invoice_sync_e_{uuid.uuid4().hex[:10]}"
    await admin(server_dsn, f'CREATE DATABASE "{name}"')
    yield with_database(server_dsn, name)
    await admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=5)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For a test that calls ``configure_logging``: the logging set-up as it was, after it."""
    saved, debug = structlog.get_config(), DEBUG.wanted()
    yield
    logging.getLogger().removeHandler(LIBRARY_BRIDGE)
    structlog.configure(**saved)
    DEBUG.set(logging.DEBUG if debug else logging.INFO)
