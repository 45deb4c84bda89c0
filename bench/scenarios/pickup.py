"""Scenario 3: pickup latency at idle, from the producer's COMMIT to the sandbox receiving the
request, one insert at a time.

The daemon is the real ``invoice-sync run`` (a subprocess, product defaults: LISTEN/NOTIFY wakes
it, the 5 s poll is the fallback). The producer stamps ``time.time()`` just before it sends
COMMIT (so the figure includes the commit itself); the sandbox stamps the request on arrival,
before reading its body. Same machine, same clock. After each pickup the producer waits
``pickup_gap`` so the next insert finds the worker idle again (its flush done).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import asyncpg

from bench.databases import scratch
from bench.plan import Context
from bench.processes import account_toml, daemon, sandbox, write_config
from bench.report import Figure, ScenarioResult
from bench.stand import StandClient
from bench.workload import ACCOUNT, invoice

NAME = "pickup"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


async def _insert(conn: asyncpg.Connection, key: str) -> float:
    """Enqueue one row as a producer would, in its own transaction; the time COMMIT was sent."""
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute(
        "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)", ACCOUNT, key, json.dumps(invoice(key))
    )
    committing = time.time()
    await transaction.commit()
    return committing


async def _measure(dsn: str, stand: StandClient, count: int, gap: float) -> tuple[list[float], int]:
    conn = await asyncpg.connect(dsn)
    latencies: list[float] = []
    missed = 0
    try:
        # Warm-up: the daemon's first request opens its HTTP connection.
        await _insert(conn, "P-warm")
        await stand.wait("P-warm", wait_seconds=30)
        for i in range(count):
            key = f"P-{i}"
            committed = await _insert(conn, key)
            received = await stand.wait(key, wait_seconds=10)
            if received is None:
                missed += 1
            else:
                latencies.append((received - committed) * 1000)
            await asyncio.sleep(gap)
    finally:
        await conn.close()
    return latencies, missed


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    sizes = ctx.sizes
    async with scratch(ctx.server_dsn, "pickup") as dsn:
        with sandbox("--stamp") as url:
            stand = StandClient(url)
            account = account_toml(
                provider="billclap", url=url, rate="1000/second", concurrency=ctx.concurrency
            )
            config = write_config(ctx.workdir / "pickup.toml", dsn, account)
            process = daemon(config, log=ctx.workdir / "pickup-daemon.log")
            try:
                latencies, missed = await _measure(
                    dsn, stand, sizes.pickup_inserts, sizes.pickup_gap
                )
            finally:
                process.terminate()
                process.wait(timeout=60)
                await stand.close()
    figures = [
        Figure(measure="p50", value=percentile(latencies, 50), unit="ms", target="<= 5"),
        Figure(measure="p95", value=percentile(latencies, 95), unit="ms"),
        Figure(measure="p99", value=percentile(latencies, 99), unit="ms", target="<= 20"),
        Figure(measure="max", value=max(latencies), unit="ms"),
        Figure(measure="mean", value=statistics.fmean(latencies), unit="ms"),
    ]
    details: dict[str, Any] = {
        "inserts": sizes.pickup_inserts,
        "measured": len(latencies),
        "missed": missed,
        "gap_s": sizes.pickup_gap,
        "latencies_ms": [round(v, 3) for v in latencies],
    }
    notes = [
        "Daemon: `python -m worker run` subprocess, product defaults (LISTEN/NOTIFY, 5 s poll).",
        "Clock: producer time.time() just before COMMIT; sandbox time.time() on request arrival.",
    ]
    return ScenarioResult(
        scenario=NAME,
        title="pickup latency at idle",
        size=ctx.size,
        figures=figures,
        details=details,
        notes=notes,
        elapsed=time.time() - began,
    )
