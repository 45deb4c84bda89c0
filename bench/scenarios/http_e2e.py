"""Scenario 2: the engine end to end over HTTP against the BillClap sandbox, and the ceiling.

The sandbox runs in its own process (on a 2-core machine it gets about one core, the bench
process the other), so neither side's CPU is counted against the other's event loop.
"""

from __future__ import annotations

import time
from typing import Any

from bench.ceiling import ceiling
from bench.databases import scratch
from bench.engine_run import drain, rate, settings
from bench.plan import Context
from bench.processes import TOKEN, sandbox
from bench.report import Figure, ScenarioResult
from bench.stand import StandClient
from bench.statements import recorded
from bench.workload import bulk_load

NAME = "http_e2e"


async def _engine(
    ctx: Context, stand: StandClient, count: int, prefix: str, latency: float
) -> dict[str, Any]:
    await stand.reset(latency=latency)
    async with scratch(ctx.server_dsn, "http") as dsn:
        await bulk_load(dsn, count, prefix=prefix)
        config = settings(dsn, provider="billclap", url=stand.url, concurrency=ctx.concurrency)
        async with recorded(dsn, ctx.pg_stat_statements) as statements:
            result = await drain(config, ctx.workdir / f"http_{prefix}.log")
    window = await stand.window()
    result["sandbox_statuses"] = window["statuses"]
    result["first_request"] = window["first"]
    result["pg_stat_statements"] = statements
    result["rate"] = rate(result["synced"], window["first"], result["last_synced"])
    return result


async def _ceiling(
    ctx: Context, stand: StandClient, count: int, prefix: str, latency: float
) -> dict[str, Any]:
    await stand.reset(latency=latency)
    return await ceiling(
        stand.url, count=count, concurrency=ctx.concurrency, prefix=prefix, token=TOKEN
    )


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    sizes, c = ctx.sizes, ctx.concurrency
    details: dict[str, Any] = {
        "concurrency": c,
        "invoices": sizes.http_invoices,
        "latency_invoices": sizes.http_latency_invoices,
    }
    figures: list[Figure] = []
    with sandbox() as url:
        stand = StandClient(url)
        try:
            if not ctx.engine_only:
                details["ceiling_before"] = await _ceiling(
                    ctx, stand, sizes.http_invoices, "C1", 0.0
                )
            engine = details["engine"] = await _engine(ctx, stand, sizes.http_invoices, "E", 0.0)
            if not ctx.engine_only:
                details["ceiling_after"] = await _ceiling(
                    ctx, stand, sizes.http_invoices, "C2", 0.0
                )
            slow = details["engine_latency"] = await _engine(
                ctx, stand, sizes.http_latency_invoices, "L", sizes.http_latency
            )
            if not ctx.engine_only:
                details["ceiling_latency"] = await _ceiling(
                    ctx, stand, sizes.http_latency_invoices, "CL", sizes.http_latency
                )
        finally:
            await stand.close()
    figures.append(Figure(measure="engine, 0 ms", value=engine["rate"], unit="invoices/s"))
    if not ctx.engine_only:
        top = (details["ceiling_before"]["rate"] + details["ceiling_after"]["rate"]) / 2
        figures += [
            Figure(measure="ceiling, 0 ms (mean of before/after)", value=top, unit="requests/s"),
            Figure(
                measure="engine / ceiling, 0 ms",
                value=engine["rate"] / top if engine["rate"] else None,
                target=">= 0.85",
            ),
        ]
    theoretical = c / sizes.http_latency
    figures += [
        Figure(
            measure=f"engine, {sizes.http_latency * 1000:g} ms",
            value=slow["rate"],
            unit="invoices/s",
        ),
        Figure(
            measure="theoretical max (concurrency / latency)", value=theoretical, unit="invoices/s"
        ),
        Figure(
            measure=f"engine / theoretical, {sizes.http_latency * 1000:g} ms",
            value=slow["rate"] / theoretical if slow["rate"] else None,
        ),
    ]
    if not ctx.engine_only:
        cl = details["ceiling_latency"]["rate"]
        figures.append(
            Figure(
                measure=f"ceiling / theoretical, {sizes.http_latency * 1000:g} ms",
                value=cl / theoretical,
            )
        )
    notes = [
        "Sandbox: bench.sandbox_process (the BillClap sandbox + a receive-stamp middleware) in its "
        "own process; 2 cores shared with other work, so it can be the limit: the ceiling shows that.",
        "Engine window: first request received by the sandbox to the last outcome's flush. "
        "Ceiling: same client code and bodies, no database; run before and after the engine.",
    ]
    return ScenarioResult(
        scenario=NAME,
        title="end to end over HTTP vs the raw HTTP ceiling",
        size=ctx.size,
        figures=figures,
        details=details,
        notes=notes,
        elapsed=time.time() - began,
    )
