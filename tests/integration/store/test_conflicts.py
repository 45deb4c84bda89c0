"""A statement PostgreSQL rolls back for a clash with another transaction (here a real deadlock)
reaches the engine as ``StoreUnavailableError``, which its loop and flusher retry: in a chaos
run, two replicas once deadlocked on account rows and one replica exited with "database error:
deadlock detected"."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from worker.store import database
from worker.store.database import StoreUnavailableError


async def test_a_deadlock_is_a_failure_to_retry_not_a_crash(dsn: str) -> None:
    setup = await asyncpg.connect(dsn)
    await setup.execute("CREATE TABLE pair (id int PRIMARY KEY); INSERT INTO pair VALUES (1), (2)")
    await setup.close()
    pool = await database.create_pool(dsn, min_size=2, max_size=2)
    both_locked = asyncio.Barrier(2)

    async def lock(first: int, second: int) -> None:
        async with database.transaction(pool) as conn:
            await conn.execute("UPDATE pair SET id = id WHERE id = $1", first)
            await both_locked.wait()
            await conn.execute("UPDATE pair SET id = id WHERE id = $1", second)

    try:
        outcomes = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
    finally:
        await pool.close()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1, outcomes
    assert isinstance(failures[0], StoreUnavailableError)
    assert "deadlock detected" in str(failures[0])


async def test_run_translates_a_rolled_back_statement_too(dsn: str) -> None:
    async def clash() -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    with pytest.raises(StoreUnavailableError, match="conflict"):
        await database.run(clash)
