"""Times each console page over HTTP with a million-row outbox.

    python -m bench.console_pages [--outbox 1000000] [--attempts 100000] [--requests 50]

Fills a fresh database with generate_series (outbox rows over three accounts, attempts,
synced rows, dead letters, audit entries), runs VACUUM ANALYZE as autovacuum would have, serves
the console in this process on loopback, and requests each page ``--requests`` times after one
warm-up request; prints the median and p95 in milliseconds (a Markdown table for
bench/RESULTS.md). The console must answer each page in under 200 ms at full size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from aiohttp import web

from bench.databases import scratch, server
from worker.console.app import build_app
from worker.console.overview import ConfiguredAccount
from worker.store import database

ACCOUNTS = ("shop-billclap", "shop-billit", "shop-refrens")
FILL = [
    # Outbox: pending rows of three accounts, a few hundred in flight.
    """INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, state, created_at,
                                        available_at, attempts)
       SELECT (ARRAY{accounts})[1 + n % 3], 'order-' || n,
              jsonb_build_object('number', 'WEB-' || n, 'lines',
                  jsonb_build_array(jsonb_build_object('name', 'Item', 'quantity', 1,
                                                       'unit_price', 100))),
              CASE WHEN n % 2000 = 0 THEN 'running' ELSE 'pending' END,
              now() - make_interval(secs => ($1 - n) / 100.0),
              now() - make_interval(secs => ($1 - n) / 100.0), n % 3
         FROM generate_series(1, $1) AS n""",
    # Synced: a quarter as many as the outbox holds, the last hour's at 300 a minute.
    """INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,
                                        provider_invoice_id, invoice_number, attempts, synced_at)
       SELECT 10000000 + n, (ARRAY{accounts})[1 + n % 3], 'done-' || n, 'billclap',
              'prov-' || n, 'INV-' || n, 1, now() - make_interval(secs => ($1 / 4 - n) / 5.0)
         FROM generate_series(1, $1 / 4) AS n""",
    # Dead letters: one in fifty.
    """INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload,
                                             reason, error, http_status, attempts, dead_at)
       SELECT 20000000 + n, (ARRAY{accounts})[1 + n % 3], 'dead-' || n,
              jsonb_build_object('number', 'DL-' || n),
              (ARRAY['rejected','duplicate','exhausted','credits_expired'])[1 + n % 4],
              'HTTP 422: refused', 422, 3, now() - make_interval(secs => $1 / 50 - n)
         FROM generate_series(1, $1 / 50) AS n""",
    # Attempts.
    """INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key, attempt,
                                         worker, provider, started_at, duration_ms, http_status,
                                         outcome, error, outcome_unknown)
       SELECT n, 1, (ARRAY{accounts})[1 + n % 3], 'order-' || n, 1, 'w1', 'billclap',
              now() - make_interval(secs => $2 - n), 40, 503, 'retry', 'HTTP 503', false
         FROM generate_series(1, $2) AS n""",
    """INSERT INTO invoice_sync.audit (actor, action, rows, reason)
       SELECT 'ops@host', 'replay', 1, 'bench' FROM generate_series(1, 1000)""",
]
PAGES = {
    "overview": "/",
    "invoices": "/invoices",
    "invoices, one account, page 2": "/invoices?account=shop-billit&after_account=shop-billit&after_key=order-{half}",
    "search by key": "/invoices?q=order-{probe}",
    "search by invoice number": "/invoices?q=INV-{synced_probe}",
    "search by provider id": "/invoices?q=prov-{synced_probe}",
    "invoice": "/invoice?account={probe_account}&key=order-{probe}",
    "dead letters": "/dead-letters",
    "dead letters, filtered": "/dead-letters?reason=exhausted&account=shop-billit&older_than=1h",
    "dead letter": "/dead-letters/20000001",
    "bulk preview": "/dead-letters/bulk?action=replay&reason=rejected",
    "accounts": "/accounts",
    "audit": "/audit",
}


async def fill(dsn: str, outbox: int, attempts: int) -> float:
    started = time.perf_counter()
    conn = await database.connect(dsn)
    try:
        accounts = "[" + ",".join(f"'{a}'" for a in ACCOUNTS) + "]"
        for statement in FILL:
            # Whole numbers and fixed names, written into the text: the sizes are ints.
            sql = statement.replace("{accounts}", accounts)
            await conn.execute(
                sql.replace("$1", str(int(outbox))).replace("$2", str(int(attempts)))
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


def page_paths(outbox: int) -> dict[str, str]:
    """The pages, their probes picked among the rows ``fill`` wrote for this size."""
    probe = outbox * 7 // 9
    return {
        label: path.format(
            probe=probe,
            probe_account=ACCOUNTS[probe % 3],
            synced_probe=outbox // 8,
            half=outbox // 2,
        )
        for label, path in PAGES.items()
    }


async def time_pages(dsn: str, requests: int, outbox: int) -> dict[str, list[float]]:
    pool = await database.create_pool(dsn, min_size=1, max_size=4)
    configured = {
        a: ConfiguredAccount(provider=a.split("-")[1], rate_limit="60/60s", concurrency=4)
        for a in ACCOUNTS
    }
    app = build_app(pool, auth=None, accounts=configured, database="bench")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    timings: dict[str, list[float]] = {}
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for label, path in page_paths(outbox).items():
                samples = []
                for n in range(requests + 1):
                    started = time.perf_counter()
                    async with http.get(path) as response:
                        await response.read()
                        assert response.status == 200, (path, response.status)
                    if n:  # the first request warms the prepared statements
                        samples.append((time.perf_counter() - started) * 1000)
                timings[label] = samples
    finally:
        await runner.cleanup()
        await pool.close()
    return timings


def report(timings: dict[str, list[float]]) -> str:
    lines = ["| page | median ms | p95 ms |", "|---|---:|---:|"]
    for label, samples in timings.items():
        ordered = sorted(samples)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        lines.append(f"| {label} | {statistics.median(ordered):.1f} | {p95:.1f} |")
    return "\n".join(lines)


SYNCED_INSERT = """INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key,
        provider, provider_invoice_id, invoice_number, attempts)
    SELECT $1 + n, 'shop', 'k' || ($1 + n), 'billclap', 'prov-' || ($1 + n), 'INV-' || ($1 + n), 1
      FROM generate_series(1, 100) AS n"""
SYNCED_SEARCH_INDEXES = ("synced_invoice_number_idx", "synced_provider_invoice_id_idx")


async def synced_insert_seconds(server_dsn: str, *, with_search_indexes: bool) -> float:
    """Seconds to insert 200,000 synced rows in flush-sized statements of 100, with or without
    the two search indexes migration 009 adds to synced (what each synced row pays for them)."""
    async with scratch(server_dsn, "synced") as dsn:
        conn = await database.connect(dsn)
        try:
            if not with_search_indexes:
                for index in SYNCED_SEARCH_INDEXES:
                    await conn.execute(f"DROP INDEX invoice_sync.{index}")
            started = time.perf_counter()
            for batch in range(2000):
                await conn.execute(SYNCED_INSERT, batch * 100)
            return time.perf_counter() - started
        finally:
            await conn.close()


async def measure(server_dsn: str, args: argparse.Namespace) -> None:
    if args.synced_index_cost:
        for _ in range(2):
            without = await synced_insert_seconds(server_dsn, with_search_indexes=False)
            with_them = await synced_insert_seconds(server_dsn, with_search_indexes=True)
            print(f"200k synced rows: {without:.2f}s without 009's indexes, {with_them:.2f}s with")
        return
    async with scratch(server_dsn, "console") as dsn:
        took = await fill(dsn, args.outbox, args.attempts)
        print(f"filled {args.outbox} outbox rows, {args.attempts} attempts in {took:.0f}s")
        print(report(await time_pages(dsn, args.requests, args.outbox)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outbox", type=int, default=1_000_000)
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--synced-index-cost",
        action="store_true",
        help="instead: time synced inserts with and without migration 009's synced indexes",
    )
    arguments = parser.parse_args()
    # The server is found (or started) outside the event loop: it runs its own probe.
    with server() as found:
        asyncio.run(measure(found, arguments))
