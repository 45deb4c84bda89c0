"""A pool the server refuses at start-up is one ``StoreError``, never asyncpg's own exception
(which the CLI would print as a traceback), and its message holds no password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from worker.errors import StoreError
from worker.store import database

PASSWORD = "pool-secret-5e6f"


async def test_a_startup_packet_the_server_refuses_is_a_store_error(dsn: str) -> None:
    # A NUL in the database's name reaches the start-up packet (asyncpg decodes the %00), and
    # the server answers ProtocolViolationError. The config check refuses such a URL first;
    # the pool must not leak the error for whatever else the server refuses at start-up.
    parts = urlsplit(dsn)
    where = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    refused = urlunsplit((parts.scheme, where, parts.path + "%00", parts.query, ""))
    with pytest.raises(StoreError, match="cannot connect to the database") as raised:
        await database.create_pool(refused, min_size=1, max_size=1)
    assert PASSWORD not in str(raised.value)
