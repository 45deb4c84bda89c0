"""The pool's reset on release: asyncpg's reset statement, or none for the worker's pool."""

from __future__ import annotations

from worker.store import database


async def _application_name_after_release(dsn: str, *, reset_sessions: bool) -> str:
    pool = await database.create_pool(dsn, min_size=1, max_size=1, reset_sessions=reset_sessions)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left behind'")
        async with pool.acquire() as conn:
            name: str = await conn.fetchval("SHOW application_name")
    finally:
        await pool.close()
    return name


async def test_the_default_pool_resets_each_session_it_takes_back(dsn: str) -> None:
    assert await _application_name_after_release(dsn, reset_sessions=True) != "left behind"


async def test_a_pool_without_session_reset_sends_no_reset_statement(dsn: str) -> None:
    # The session setting survives the release: no `RESET ALL` (nor the rest of asyncpg's
    # reset statement) went to the server, which is the round trip this pool saves.
    assert await _application_name_after_release(dsn, reset_sessions=False) == "left behind"


async def test_a_pool_without_session_reset_still_rolls_back_an_open_transaction(
    dsn: str,
) -> None:
    pool = await database.create_pool(dsn, min_size=1, max_size=1, reset_sessions=False)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("CREATE TABLE left_open (x int)")
        async with pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('left_open') IS NOT NULL")
    finally:
        await pool.close()
    assert exists is False
