"""The peer: procrastinate (its default psycopg connector) running a no-op task over the same
number of jobs, at the same concurrency, on the same PostgreSQL server (its own fresh database).

Imported only when the comparison runs: procrastinate is in the ``bench`` extra, not a product
dependency.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.databases import scratch

DEFER_CHUNK = 5000


async def throughput(
    server_dsn: str, *, jobs: int, concurrency: int, pool_size: int
) -> dict[str, Any]:
    import procrastinate  # noqa: PLC0415 - the bench extra

    # Procrastinate's own default: the root logger's WARNING (its CLI's default verbosity).
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    async with scratch(server_dsn, "procrastinate", migrated=False) as dsn:
        connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool_size)
        app = procrastinate.App(connector=connector)
        first: list[float] = []

        @app.task(name="noop", queue="bench")
        async def noop(i: int) -> None:
            if not first:
                first.append(time.time())

        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            for start in range(0, jobs, DEFER_CHUNK):
                batch: list[dict[str, Any]] = [
                    {"i": i} for i in range(start, min(start + DEFER_CHUNK, jobs))
                ]
                await noop.batch_defer_async(*batch)
            started = time.time()
            await app.run_worker_async(queues=["bench"], concurrency=concurrency, wait=False,
                                       install_signal_handlers=False)  # fmt: skip
            returned = time.time()
            row = await connector.execute_query_one_async(
                "SELECT count(*) FILTER (WHERE status = 'succeeded') AS done,"
                " count(*) AS total FROM procrastinate_jobs"
            )
            last = await connector.execute_query_one_async(
                "SELECT extract(epoch FROM max(at))::float8 AS at FROM procrastinate_events"
                " WHERE type = 'succeeded'"
            )
    return {
        "version": procrastinate.__version__ if hasattr(procrastinate, "__version__") else None,
        "started": started,
        "returned": returned,
        "first_call": first[0] if first else None,
        "succeeded": row["done"],
        "total": row["total"],
        "last_succeeded": last["at"],
        "pool_max_size": pool_size,
    }
