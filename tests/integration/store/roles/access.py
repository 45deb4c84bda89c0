"""What the role tests share: the two logins, a one-shot connection, and a refused statement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest


@dataclass(frozen=True)
class Logins:
    producer: str
    """Granted the account ``shop`` only."""
    worker: str


async def connected(dsn: str, action: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await action(conn)
    finally:
        await conn.close()


async def assert_denied(conn: asyncpg.Connection, statement: str, *args: object) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute(statement, *args)


INSERT_OUTBOX = "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
