"""Finding a PostgreSQL server to work on, for the tests and the bench: an explicit URL, else
the local server when it answers, else a throwaway embedded one (``worker.embedded``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from worker.config import DEFAULT_TEST_DATABASE_URL
from worker.embedded import EmbeddedPostgres


def with_database(url: str, name: str) -> str:
    """The same server URL pointed at another database (keeps ``?host=`` for Unix sockets)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def reachable(url: str) -> bool:
    """Whether a server answers at ``url`` within a few seconds."""
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def admin(url: str, *statements: str) -> None:
    """Run statements (``CREATE DATABASE`` and the like) on one connection of their own."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_server(env: str) -> Iterator[str]:
    """An admin URL for the whole run: ``$env`` when set, else the local server on
    127.0.0.1:5432 when it answers, else an embedded one, stopped (and removed) afterwards."""
    explicit = os.environ.get(env)
    if explicit:
        yield explicit
        return
    if asyncio.run(reachable(DEFAULT_TEST_DATABASE_URL)):
        yield DEFAULT_TEST_DATABASE_URL
        return
    with EmbeddedPostgres() as embedded:
        yield embedded.start()
