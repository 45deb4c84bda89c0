"""The second peer: PgQueuer (asyncpg) draining as many no-op jobs as the engine's invoices, on
the same PostgreSQL server (its own fresh database), once per dequeue batch size.

Driven as PgQueuer's own benchmark drives it (``tools/benchmark.py`` in its repository, the
``drain`` strategy): the jobs are enqueued up front with one batch ``Queries.enqueue``, then
``dequeuers`` ``PgQueuer`` instances, each on its own asyncpg connection (``AsyncpgDriver``),
run an async no-op entrypoint with ``mode=QueueExecutionMode.drain`` and the batch size under
test, and return once the queue is empty. Its benchmark's defaults are 5 dequeuers and batch 10.
Differences, both to measure it as the engine is measured: the bench's asyncio loop (its
benchmark runs uvloop), and the window starts at the first job's call (not before the first
dequeue) and ends when every ``run`` has returned (its status buffers flushed).

Imported only when the comparison runs: pgqueuer is in the ``bench`` extra, not a product
dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg

from bench.databases import scratch

ENQUEUE_CHUNK = 10_000
DEQUEUERS = 5
"""PgQueuer's benchmark default (``--dequeue 5``)."""
# As for procrastinate: past this many seconds the peer is stopped and its rate taken over the
# jobs it finished.
CAP_SECONDS = 240.0


async def throughput(
    server_dsn: str,
    *,
    jobs: int,
    batch_size: int,
    dequeuers: int = DEQUEUERS,
    cap: float = CAP_SECONDS,
) -> dict[str, Any]:
    import pgqueuer  # noqa: PLC0415 - the bench extra
    from pgqueuer.types import QueueExecutionMode  # noqa: PLC0415

    async with scratch(server_dsn, "pgqueuer", migrated=False) as dsn:
        setup = await asyncpg.connect(dsn)
        try:
            queries = pgqueuer.Queries(pgqueuer.AsyncpgDriver(setup))
            await queries.install()
            for start in range(0, jobs, ENQUEUE_CHUNK):
                n = min(ENQUEUE_CHUNK, jobs - start)
                await queries.enqueue(["noop"] * n, [b""] * n, [0] * n)
            # As the engine's outbox gets after its bulk load: planner statistics.
            await setup.execute("ANALYZE pgqueuer")
        finally:
            await setup.close()

        calls = 0
        first: list[float] = []
        connections = [await asyncpg.connect(dsn) for _ in range(dequeuers)]
        workers = [pgqueuer.PgQueuer(pgqueuer.AsyncpgDriver(c)) for c in connections]
        for worker in workers:

            @worker.entrypoint("noop")
            async def noop(job: pgqueuer.Job) -> None:
                nonlocal calls
                if not first:
                    first.append(time.time())
                calls += 1

        started = time.time()
        running = asyncio.gather(
            *(w.run(batch_size=batch_size, mode=QueueExecutionMode.drain) for w in workers)
        )
        try:
            await asyncio.wait_for(asyncio.shield(running), timeout=cap)
            capped = False
        except TimeoutError:
            capped = True
            # Setting its shutdown event is PgQueuer's own graceful stop.
            for worker in workers:
                worker.shutdown.set()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        returned = time.time()
        for connection in connections:
            await connection.close()
        check = await asyncpg.connect(dsn)
        try:
            left = await check.fetchval("SELECT count(*) FROM pgqueuer")
        finally:
            await check.close()
    return {
        "version": getattr(pgqueuer, "__version__", None),
        "batch_size": batch_size,
        "dequeuers": dequeuers,
        "started": started,
        "returned": returned,
        "first_call": first[0] if first else None,
        "calls": calls,
        "left_in_queue": left,
        "capped_after_s": cap if capped else None,
    }
