"""The queries of ``invoice-sync demo``, one function per named query: its own database on the
embedded server, its rows' progress and examples, and removing its rows from a configured
database on the way out."""

from __future__ import annotations

from collections.abc import Sequence

from worker.store import database
from worker.store.database import Pool, Row
from worker.store.queries import queries


async def demo_database_recreate(server_url: str) -> None:
    """Drop and create the demo's own database (``demo_database_drop``, ``demo_database_create``)
    on the server ``server_url`` names, so every run starts from an empty one."""
    q = queries()
    conn = await database.connect(server_url)
    try:
        await database.run(lambda: conn.execute(q["demo_database_drop"]))
        await database.run(lambda: conn.execute(q["demo_database_create"]))
    finally:
        await conn.close()


async def demo_progress(pool: Pool, run: str) -> list[Row]:
    """One run's rows (keys starting with ``run``) by account, kind and detail."""
    rows: list[Row] = await database.run(lambda: pool.fetch(queries()["demo_progress"], run))
    return rows


async def demo_examples(pool: Pool, run: str) -> list[Row]:
    """One synced invoice per account of a run: account, provider, invoice_number, link."""
    rows: list[Row] = await database.run(lambda: pool.fetch(queries()["demo_examples"], run))
    return rows


async def demo_rows_delete(pool: Pool, accounts: Sequence[str]) -> int:
    """Delete every row of ``accounts`` in one statement; how many rows went."""
    query = queries()["demo_rows_delete"]
    deleted = await database.run(lambda: pool.fetchval(query, list(accounts)))
    return int(deleted or 0)
