"""Scenario 5: backlog scaling. Throughput over the first ``backlog_window`` invoices drained
with a small and a large backlog pending, and the daemon's peak RSS in each.

The daemon is a subprocess (``python -m bench.daemon run``: the real CLI with the instant
provider registered), so its RSS is its own; ``VmHWM`` is sampled from /proc while it runs.
Throughput comes from the synced table: the first ``backlog_window`` rows by ``synced_at``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.databases import scratch
from bench.plan import Context
from bench.processes import account_toml, daemon, peak_rss_kb, write_config
from bench.report import Figure, ScenarioResult
from bench.workload import bulk_load

NAME = "backlog"


async def _drain_window(dsn: str, pid: int, window: int, limit: float) -> tuple[int, int | None]:
    """Wait until ``window`` rows are synced or ``limit`` seconds have passed (a daemon slowed
    down by a large backlog must not hold the run for an hour); return (synced, peak RSS kB)."""
    conn = await asyncpg.connect(dsn)
    peak = 0
    deadline = time.time() + limit
    synced = 0
    try:
        while time.time() < deadline and synced < window:
            peak = max(peak, peak_rss_kb(pid) or 0)
            synced = await conn.fetchval("SELECT count(*) FROM invoice_sync.synced")
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    return synced, peak or None


async def _throughput(dsn: str, window: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT extract(epoch FROM min(synced_at))::float8 AS first,"
            " extract(epoch FROM max(synced_at))::float8 AS last, count(*) AS n"
            " FROM (SELECT synced_at FROM invoice_sync.synced ORDER BY synced_at LIMIT $1) s",
            window,
        )
        size = await conn.fetchval("SELECT pg_total_relation_size('invoice_sync.outbox')")
    finally:
        await conn.close()
    span = row["last"] - row["first"]
    return {
        "first": row["first"],
        "last": row["last"],
        "rows": row["n"],
        "outbox_bytes": size,
        "rate": (row["n"] - 1) / span if span > 0 else None,
    }


async def _one(ctx: Context, pending: int) -> dict[str, Any]:
    window = min(ctx.sizes.backlog_window, pending)
    async with scratch(ctx.server_dsn, "backlog") as dsn:
        loading = time.time()
        await bulk_load(dsn, pending, prefix="B")
        loaded = time.time() - loading
        account = account_toml(
            provider="bench-instant", rate="1000000/second", concurrency=ctx.concurrency
        )
        config = write_config(
            ctx.workdir / f"backlog-{pending}.toml", dsn, account, log_level="info"
        )
        process = daemon(config, module="bench.daemon", log=ctx.workdir / f"backlog-{pending}.log")
        try:
            synced, peak = await _drain_window(dsn, process.pid, window, ctx.sizes.backlog_seconds)
            peak = max(peak or 0, peak_rss_kb(process.pid) or 0)
        finally:
            process.terminate()
            process.wait(timeout=120)
        result = await _throughput(dsn, window)
    return {
        **result,
        "pending": pending,
        "window": window,
        "load_seconds": loaded,
        "window_reached": synced >= window,
        "peak_rss_mb": peak / 1024 if peak else None,
    }


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    small = await _one(ctx, ctx.sizes.backlog_small)
    large = await _one(ctx, ctx.sizes.backlog_large)
    ratio = large["rate"] / small["rate"] if large["rate"] and small["rate"] else None
    figures = [
        Figure(
            measure=f"throughput, {small['pending']:,} pending",
            value=small["rate"],
            unit="invoices/s",
        ),
        Figure(
            measure=f"throughput, {large['pending']:,} pending",
            value=large["rate"],
            unit="invoices/s",
        ),
        Figure(measure="large / small backlog throughput", value=ratio, target=">= 0.8"),
        Figure(
            measure=f"peak RSS, {small['pending']:,} pending",
            value=small["peak_rss_mb"],
            unit="MB",
            target="<= 150",
        ),
        Figure(
            measure=f"peak RSS, {large['pending']:,} pending",
            value=large["peak_rss_mb"],
            unit="MB",
            target="<= 150",
        ),
    ]
    notes = [
        f"Throughput over the first {ctx.sizes.backlog_window:,} invoices synced (by synced_at), "
        f"or over those synced in {ctx.sizes.backlog_seconds:g} s if fewer; instant provider, "
        "daemon subprocess at product defaults (info logging to a file).",
        "Rows bulk-loaded by INSERT ... SELECT generate_series, then ANALYZE.",
    ]
    return ScenarioResult(
        scenario=NAME,
        title="backlog scaling",
        size=ctx.size,
        figures=figures,
        details={"small": small, "large": large, "concurrency": ctx.concurrency},
        notes=notes,
        elapsed=time.time() - began,
    )
