"""Scenario 4: rate fidelity. N replicas (daemon processes), one account limited to R/s, a
sandbox enforcing R/s: how much of R turns into invoices, and how many 429s it costs.

The window opens after every replica has had a moment to start (the first request plus a
warm-up) and lasts ``rate_seconds``; the outbox holds more rows than the window can use.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.databases import scratch
from bench.plan import Context
from bench.processes import account_toml, daemon, sandbox, write_config
from bench.report import Figure, ScenarioResult
from bench.stand import StandClient
from bench.workload import bulk_load

NAME = "rate_fidelity"
WARMUP = 2.0


async def _window(stand: StandClient, seconds: float) -> dict[str, Any]:
    deadline = time.time() + 60
    while (await stand.window())["first"] is None:
        if time.time() > deadline:
            raise RuntimeError("no replica sent a request within 60 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(WARMUP)
    await stand.reset_window()
    await asyncio.sleep(seconds)
    return await stand.window()


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    sizes = ctx.sizes
    r, replicas = sizes.rate_limit, sizes.rate_replicas
    rows = int(r * replicas * (sizes.rate_seconds + WARMUP + 10) * 1.5)
    async with scratch(ctx.server_dsn, "rate") as dsn:
        await bulk_load(dsn, rows, prefix="R")
        with sandbox("--rate", str(r)) as url:
            stand = StandClient(url)
            account = account_toml(
                provider="billclap", url=url, rate=f"{r}/second", concurrency=ctx.concurrency
            )
            config = write_config(ctx.workdir / "rate.toml", dsn, account)
            processes = [daemon(config, log=ctx.workdir / f"rate-{i}.log") for i in range(replicas)]
            try:
                window = await _window(stand, sizes.rate_seconds)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=60)
                await stand.close()
    statuses = {int(k): v for k, v in window["statuses"].items()}
    created = statuses.get(200, 0)
    limited = statuses.get(429, 0)
    share = created / (r * sizes.rate_seconds)
    attempted = sum(statuses.values()) / sizes.rate_seconds
    figures = [
        Figure(measure="share of R used", value=share * 100, unit="%", target=">= 97"),
        Figure(measure="429 answers in the window", value=limited, target="<= 0"),
        Figure(measure="requests sent / R", value=attempted / r, unit="x"),
        Figure(measure="invoices created", value=created / sizes.rate_seconds, unit="/s"),
    ]
    details = {
        "replicas": replicas,
        "R": r,
        "seconds": sizes.rate_seconds,
        "rows_loaded": rows,
        "statuses": statuses,
        "concurrency_per_replica": ctx.concurrency,
    }
    notes = [
        f"{replicas} `python -m worker run` processes, each configured rate_limit = {r}/second; "
        "the sandbox's token bucket (R tokens, R/s) answers 429 with Retry-After (the next "
        "token) beyond it.",
        "The replicas share the account's token bucket in PostgreSQL (invoice_sync.rate_bucket):"
        " each claim takes one token per row, so together they offer R, not "
        f"{replicas}x R.",
    ]
    return ScenarioResult(
        scenario=NAME,
        title=f"rate fidelity, {replicas} replicas",
        size=ctx.size,
        figures=figures,
        details=details,
        notes=notes,
        elapsed=time.time() - began,
    )
