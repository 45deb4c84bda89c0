"""``pg_stat_statements`` around an engine run, when the server preloads it (``--pg-stat-statements``):
which statements the engine spent the database's time on, and how many calls each took."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

TOP = """
SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
       round(mean_exec_time::numeric, 3) AS mean_ms, rows,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY total_exec_time DESC
 LIMIT 12
"""


@contextlib.asynccontextmanager
async def recorded(dsn: str, enabled: bool) -> AsyncIterator[list[dict[str, Any]]]:
    """Yields a list that holds the top statements once the block is done (empty if disabled)."""
    top: list[dict[str, Any]] = []
    if not enabled:
        yield top
        return
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        yield top
        top.extend(dict(row) for row in await conn.fetch(TOP))
    finally:
        await conn.close()
