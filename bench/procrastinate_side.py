"""The peer: procrastinate (its default psycopg connector) running a no-op task over the same
number of jobs, at the same concurrency, on the same PostgreSQL server (its own fresh database).

Imported only when the comparison runs: procrastinate is in the ``bench`` extra, not a product
dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from bench.databases import scratch

DEFER_CHUNK = 5000
# A peer much slower than the engine would hold a full run for many minutes: past this many
# seconds it is stopped and its throughput taken over the jobs it finished (steady state).
CAP_SECONDS = 240.0


async def throughput(
    server_dsn: str, *, jobs: int, concurrency: int, pool_size: int, cap: float = CAP_SECONDS
) -> dict[str, Any]:
    import procrastinate  # noqa: PLC0415 - the bench extra

    # The default queue and a worker on every queue: procrastinate's defaults (a worker given
    # a queue list makes its fetch filter by queue_name, a slower plan on a long queue).
    # Procrastinate's own default: the root logger's WARNING (its CLI's default verbosity).
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    async with scratch(server_dsn, "procrastinate", migrated=False) as dsn:
        connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool_size)
        app = procrastinate.App(connector=connector)
        first: list[float] = []

        @app.task(name="noop")
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
            # As the engine's outbox gets after its bulk load: planner statistics.
            await connector.execute_query_async("ANALYZE procrastinate_jobs")
            started = time.time()
            worker = asyncio.create_task(
                app.run_worker_async(
                    concurrency=concurrency,
                    wait=False,
                    install_signal_handlers=False,
                )
            )
            done, _ = await asyncio.wait({worker}, timeout=cap)
            capped = not done
            if capped:
                # Cancelling the worker is procrastinate's own graceful stop.
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
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
        "version": getattr(procrastinate, "__version__", None),
        "started": started,
        "returned": returned,
        "first_call": first[0] if first else None,
        "succeeded": row["done"],
        "total": row["total"],
        "last_succeeded": last["at"],
        "pool_max_size": pool_size,
        "capped_after_s": cap if capped else None,
    }
