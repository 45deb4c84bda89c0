"""A short-lived connection pool for one command's queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from worker.config import Settings
from worker.store import database
from worker.store.database import Pool

T = TypeVar("T")


async def with_pool(settings: Settings, action: Callable[[Pool], Awaitable[T]]) -> T:
    """``action`` run with a pool of at most two connections, closed afterwards."""
    pool = await database.create_pool(settings.database_dsn(), min_size=1, max_size=2)
    try:
        return await action(pool)
    finally:
        await pool.close()
