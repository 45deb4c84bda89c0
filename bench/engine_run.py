"""The real engine (``worker.engine.daemon.run_worker``, exactly what ``invoice-sync run --drain``
calls) run in the bench's own process, so a profiler on the bench sees it, and timed from the
first attempt to the last outcome written."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import instant
from bench.processes import FREE_PORT, TOKEN
from bench.workload import ACCOUNT
from worker.config import Settings
from worker.engine.daemon import run_worker
from worker.logs import configure_logging

UNLIMITED = "1000000/second"


def settings(
    dsn: str, *, provider: str, url: str, concurrency: int, rate: str = UNLIMITED
) -> Settings:
    """The product's defaults except a 1 s poll (the drain check; throughput is measured to the
    last outcome written, so the poll does not count), the account under test, and a free
    port for /metrics and the probes (``FREE_PORT``)."""
    account: dict[str, Any] = {
        "provider": provider,
        "base_url": url,
        "rate_limit": rate,
        "concurrency": concurrency,
    }
    if provider == "billclap":
        account["token"] = TOKEN
    return Settings(
        database_url=dsn,
        worker={"poll_interval": 1.0},
        observe={"listen": FREE_PORT},
        accounts={ACCOUNT: account},
    )


async def drain(config: Settings, log_path: Path) -> dict[str, Any]:
    """Run the engine until drained, logging at the product's default level (info, JSON) to
    ``log_path``; return when it returned and what the synced table shows."""
    instant.FIRST_CALLS.clear()
    with log_path.open("w", encoding="utf-8") as log:
        configure_logging(fmt="json", level="info", secrets=config.secrets(), stream=log)
        started = time.time()
        cpu_before = cpu_seconds()
        try:
            await run_worker(config, drain=True)
        finally:
            # The file closes here; later events (migrations of the next run) go to stderr.
            configure_logging(fmt="console", level="warning", stream=sys.stderr)
        returned = time.time()
        cpu = cpu_seconds() - cpu_before
    conn = await asyncpg.connect(config.database_dsn())
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS synced, extract(epoch FROM max(synced_at))::float8 AS last,"
            " extract(epoch FROM min(synced_at))::float8 AS first FROM invoice_sync.synced"
        )
        left = await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        dead = await conn.fetchval("SELECT count(*) FROM invoice_sync.dead_letter")
    finally:
        await conn.close()
    return {
        "started": started,
        "returned": returned,
        "first_call": min(instant.FIRST_CALLS, default=None),
        "synced": row["synced"],
        "first_synced": row["first"],
        "last_synced": row["last"],
        "left_in_outbox": left,
        "dead": dead,
        "cpu_seconds": cpu,
    }


def cpu_seconds() -> float:
    """User and system CPU of this process so far: the engine's own cost, which the machine's
    load moves far less than the throughput (PostgreSQL runs in its own processes)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rate(count: int, start: float | None, end: float | None) -> float | None:
    if start is None or end is None or end <= start:
        return None
    return count / (end - start)
