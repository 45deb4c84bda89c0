"""A statement PostgreSQL refuses for one of its values (SQLSTATE classes 22, 23, 54) reaches the
engine as ``StoreRefusedError``, whose ``brief`` names what refused it without quoting the value
(a provider's text, which the database's message may quote); any other error stays a plain
``StoreError``."""

from __future__ import annotations

import asyncpg
import pytest

from worker.errors import StoreError
from worker.store import database
from worker.store.database import StoreRefusedError, StoreUnavailableError


@pytest.fixture
async def pool(dsn: str):  # type: ignore[no-untyped-def]
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        "CREATE TABLE kept (note text CHECK (note <> 'secret-ish'), big text);"
        " CREATE INDEX ON kept (big)"
    )
    await setup.close()
    pool = await database.create_pool(dsn, min_size=1, max_size=1)
    yield pool
    await pool.close()


@pytest.mark.parametrize(
    ("statement", "brief"),
    [
        (
            "INSERT INTO kept (note) VALUES ('secret-ish')",
            "SQLSTATE 23514, constraint kept_note_check, table kept",
        ),
        ("""SELECT '"\\u0000"'::jsonb""", "SQLSTATE 22P05"),
        (
            "INSERT INTO kept (big) SELECT string_agg(md5(i::text), '') FROM generate_series(1, 700) i",
            "SQLSTATE 54000",
        ),
    ],
)
async def test_a_refused_value_is_named_without_being_quoted(
    pool: asyncpg.Pool, statement: str, brief: str
) -> None:
    for attempt in (_alone, _in_transaction):
        with pytest.raises(StoreRefusedError) as caught:
            await attempt(pool, statement)
        assert caught.value.brief == brief
        assert "secret-ish" not in caught.value.brief


async def _alone(pool: asyncpg.Pool, statement: str) -> None:
    await database.run(lambda: pool.execute(statement))


async def _in_transaction(pool: asyncpg.Pool, statement: str) -> None:
    async with database.transaction(pool) as conn:
        await conn.execute(statement)


async def test_another_error_is_not_a_refused_value(pool: asyncpg.Pool) -> None:
    with pytest.raises(StoreError) as caught:
        await database.run(lambda: pool.execute("DO $$ BEGIN RAISE EXCEPTION 'no'; END $$"))
    assert not isinstance(caught.value, StoreRefusedError | StoreUnavailableError)
