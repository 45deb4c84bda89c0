"""Scenario 6: bulk enqueue. ``invoice-sync enqueue FILE`` (the real CLI, a subprocess) loading
``enqueue_lines`` JSON Lines, against producers calling ``invoice_sync.enqueue()`` once per row
(asyncpg, ``enqueue_connections`` connections in parallel, autocommit: one transaction a row).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import asyncpg

from bench.databases import scratch
from bench.plan import Context
from bench.processes import account_toml, write_config
from bench.report import Figure, ScenarioResult
from bench.workload import ACCOUNT, invoice, write_jsonl

NAME = "bulk_enqueue"


async def _cli(ctx: Context) -> dict[str, Any]:
    lines = ctx.sizes.enqueue_lines
    path = ctx.workdir / "enqueue.jsonl"
    write_jsonl(path, lines, prefix="J")
    async with scratch(ctx.server_dsn, "enqueue") as dsn:
        account = account_toml(
            provider="billclap", url="http://127.0.0.1:9", rate="10/second", concurrency=1
        )
        config = write_config(ctx.workdir / "enqueue.toml", dsn, account)
        started = time.time()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            "--config",
            str(config),
            "enqueue",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        seconds = time.time() - started
        conn = await asyncpg.connect(dsn)
        try:
            count: int = await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        finally:
            await conn.close()
    path.unlink()
    if process.returncode != 0 or count != lines:
        raise RuntimeError(f"enqueue failed ({process.returncode}, {count} rows): {err[-500:]!r}")
    return {
        "lines": lines,
        "seconds": seconds,
        "rows": count,
        "rate": count / seconds,
        "output": out.decode().strip(),
    }


async def _per_row(ctx: Context) -> dict[str, Any]:
    total, lanes = ctx.sizes.enqueue_per_row, ctx.sizes.enqueue_connections
    bodies = [json.dumps(invoice(f"F-{i}")) for i in range(total)]
    async with scratch(ctx.server_dsn, "enqueue_fn") as dsn:
        conns = [await asyncpg.connect(dsn) for _ in range(lanes)]
        try:

            async def lane(conn: asyncpg.Connection, start: int) -> None:
                for i in range(start, total, lanes):
                    await conn.execute(
                        "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)",
                        ACCOUNT,
                        f"F-{i}",
                        bodies[i],
                    )

            started = time.time()
            await asyncio.gather(*(lane(c, n) for n, c in enumerate(conns)))
            seconds = time.time() - started
            count: int = await conns[0].fetchval("SELECT count(*) FROM invoice_sync.outbox")
        finally:
            for conn in conns:
                await conn.close()
    return {"rows": count, "connections": lanes, "seconds": seconds, "rate": count / seconds}


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    cli = await _cli(ctx)
    per_row = await _per_row(ctx)
    figures = [
        Figure(
            measure="`invoice-sync enqueue` (CLI, incl. start-up)",
            value=cli["rate"],
            unit="rows/s",
            target=">= 50000",
        ),
        Figure(
            measure=f"enqueue() per row, {per_row['connections']} connections",
            value=per_row["rate"],
            unit="rows/s",
        ),
        Figure(measure="CLI / per-row", value=cli["rate"] / per_row["rate"], unit="x"),
    ]
    notes = [
        f"CLI: {cli['lines']:,} lines from a file, every payload validated (one parser "
        "process per core, at most 4), COPY in chunks in file order; timed as the whole "
        "subprocess (start-up included, ~1 s).",
        f"Per row: {per_row['rows']:,} calls of invoice_sync.enqueue(), each its own transaction.",
    ]
    return ScenarioResult(
        scenario=NAME,
        title="bulk enqueue",
        size=ctx.size,
        figures=figures,
        details={"cli": cli, "per_row": per_row},
        notes=notes,
        elapsed=time.time() - began,
    )
