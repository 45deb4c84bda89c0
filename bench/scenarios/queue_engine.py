"""Scenario 1: the queue engine with an instant provider, against procrastinate, same run."""

from __future__ import annotations

import time
from typing import Any

from bench import instant
from bench.databases import scratch
from bench.engine_run import drain, rate, settings
from bench.plan import Context
from bench.report import Figure, ScenarioResult
from bench.statements import recorded
from bench.workload import bulk_load

NAME = "queue_engine"
PGQUEUER_BATCH_SIZES = (10, 100)
"""Its benchmark's default dequeue batch, and the one at which it is fastest here."""


def pool_size(concurrency: int) -> int:
    """The daemon's pool size for this concurrency (``worker.engine.daemon.run_worker``)."""
    return max(4, min(concurrency, 20))


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    count = ctx.sizes.queue_invoices
    instant.register()
    async with scratch(ctx.server_dsn, "queue") as dsn:
        await bulk_load(dsn, count, prefix="Q")
        config = settings(
            dsn, provider=instant.NAME, url="http://127.0.0.1:9", concurrency=ctx.concurrency
        )
        async with recorded(dsn, ctx.pg_stat_statements) as statements:
            engine = await drain(config, ctx.workdir / "queue_engine.log")
    engine_rate = rate(engine["synced"], engine["first_call"], engine["last_synced"])
    cpu = engine["cpu_seconds"] * 1e6 / engine["synced"] if engine["synced"] else None
    figures = [
        Figure(measure="engine throughput", value=engine_rate, unit="invoices/s"),
        Figure(measure="engine CPU per invoice", value=cpu, unit="µs"),
    ]
    details = {
        "invoices": count,
        "concurrency": ctx.concurrency,
        "engine": engine,
        "pg_stat_statements": statements,
    }
    notes = [
        "Window: first provider call to the last outcome's flush (synced_at); the daemon's "
        "drain check (poll) after that is not counted.",
        "Engine logs at the product default (info, JSON, one line per invoice) to a file.",
        "Engine CPU: the bench process's user and system time from start to return of the "
        "drain (start-up and the drain check included), over the invoices synced.",
    ]
    if not ctx.engine_only:
        from bench.procrastinate_side import throughput  # noqa: PLC0415

        peer = await throughput(
            ctx.server_dsn,
            jobs=count,
            concurrency=ctx.concurrency,
            pool_size=pool_size(ctx.concurrency),
        )
        peer_rate = rate(peer["succeeded"], peer["first_call"], peer["last_succeeded"])
        ratio = engine_rate / peer_rate if engine_rate and peer_rate else None
        figures += [
            Figure(measure="procrastinate throughput", value=peer_rate, unit="jobs/s"),
            Figure(measure="engine / procrastinate", value=ratio, unit="x", target=">= 40"),
        ]
        details["procrastinate"] = peer
        if peer["capped_after_s"] is not None:
            notes.append(
                f"procrastinate was stopped after {peer['capped_after_s']:g} s "
                f"({peer['succeeded']:,} of {count:,} jobs done): its rate is over those."
            )
        notes.append(
            "procrastinate: App(PsycopgConnector) with the daemon's pool size, no-op async task, "
            "run_worker_async(wait=False); window: first task call to the last 'succeeded' event."
        )
        figures += await pgqueuer_figures(ctx, count, engine_rate, details, notes)
    return ScenarioResult(
        scenario=NAME,
        title="queue engine, instant provider",
        size=ctx.size,
        figures=figures,
        details=details,
        notes=notes,
        elapsed=time.time() - began,
    )


async def pgqueuer_figures(
    ctx: Context, count: int, engine_rate: float | None, details: dict[str, Any], notes: list[str]
) -> list[Figure]:
    """PgQueuer over as many jobs at each batch size; the ratio is against the faster one."""
    from bench import pgqueuer_side  # noqa: PLC0415 - the bench extra

    figures: list[Figure] = []
    rates: list[float] = []
    for batch_size in PGQUEUER_BATCH_SIZES:
        peer = await pgqueuer_side.throughput(ctx.server_dsn, jobs=count, batch_size=batch_size)
        peer_rate = rate(peer["calls"], peer["first_call"], peer["returned"])
        details[f"pgqueuer_batch_{batch_size}"] = peer
        figures.append(
            Figure(
                measure=f"pgqueuer throughput, batch {batch_size}", value=peer_rate, unit="jobs/s"
            )
        )
        if peer_rate:
            rates.append(peer_rate)
        if peer["capped_after_s"] is not None:
            notes.append(
                f"pgqueuer (batch {batch_size}) was stopped after {peer['capped_after_s']:g} s "
                f"({peer['calls']:,} of {count:,} jobs done): its rate is over those."
            )
    best = max(rates, default=None)
    ratio = engine_rate / best if engine_rate and best else None
    figures.append(Figure(measure="engine / pgqueuer", value=ratio, unit="x", target=">= 1.0"))
    notes.append(
        f"pgqueuer: as its own benchmark's drain strategy: {pgqueuer_side.DEQUEUERS} PgQueuer "
        "instances, one asyncpg connection each, no-op async entrypoint, "
        "run(batch_size=B, mode=drain), batch sizes "
        + " and ".join(str(b) for b in PGQUEUER_BATCH_SIZES)
        + "; window: first job call to every run() returned; the ratio uses the faster batch size."
    )
    return figures
