"""``python -m bench [--scenario NAME ...] [--size small|full]``: run the scenarios, print a
table each, write ``RESULTS_DIR/<scenario>.json`` and refresh RESULTS.md. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import databases, machine, report
from bench.plan import SIZES, Context, sized
from bench.report import ScenarioResult
from bench.scenarios import (
    backlog,
    bulk_enqueue,
    http_e2e,
    many_accounts,
    pickup,
    queue_engine,
    rate_fidelity,
)

HERE = Path(__file__).parent
SCENARIOS: dict[str, Callable[[Context], Awaitable[ScenarioResult]]] = {
    queue_engine.NAME: queue_engine.run,
    http_e2e.NAME: http_e2e.run,
    pickup.NAME: pickup.run,
    rate_fidelity.NAME: rate_fidelity.run,
    backlog.NAME: backlog.run,
    bulk_enqueue.NAME: bulk_enqueue.run,
    many_accounts.NAME: many_accounts.run,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="repeatable; default: all, in order",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one size, e.g. --set queue_invoices=10000",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="the account's concurrency, and the peers' (default 16)",
    )
    parser.add_argument(
        "--engine-only",
        action="store_true",
        help="skip the peers (procrastinate, PgQueuer) and the HTTP ceiling (for profiling)",
    )
    parser.add_argument(
        "--pg-stat-statements",
        action="store_true",
        help="record pg_stat_statements (the server must preload it)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep logs and configs here (default: a temp dir)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--summary", type=Path, default=HERE / "RESULTS.md")
    return parser.parse_args(argv)


async def run_one(name: str, ctx: Context, args: argparse.Namespace, command: list[str]) -> bool:
    try:
        result = await SCENARIOS[name](ctx)
    except Exception:  # noqa: BLE001 - one scenario's failure must not stop the others
        traceback.print_exc()
        print(f"== {name}: FAILED", flush=True)
        return False
    version = await databases.server_version(ctx.server_dsn)
    result.run = {**machine.describe(version, command), "at": time.strftime("%Y-%m-%d %H:%M:%S%z")}
    print(report.table(result), flush=True)
    report.write_json(result, args.results)
    return True


def main(argv: list[str] | None = None) -> int:
    command = ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        sizes = sized(args.size, args.set)
    except ValueError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    chosen = args.scenario or list(SCENARIOS)
    failed = []
    with databases.server() as server_dsn, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = Context(
            server_dsn=server_dsn,
            size=args.size,
            sizes=sizes,
            concurrency=args.concurrency,
            engine_only=args.engine_only,
            pg_stat_statements=args.pg_stat_statements,
            workdir=workdir,
        )
        for name in chosen:
            if not asyncio.run(run_one(name, ctx, args, command)):
                failed.append(name)
    report.update_summary(args.summary, args.results, list(SCENARIOS))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
