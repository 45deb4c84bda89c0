"""The subcommands behind ``invoice-sync``: each parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO, TypeVar

from worker.cli import dlq as dlq_commands
from worker.cli.enqueue import MAX_ENQUEUE_PARSERS, enqueue_lines
from worker.cli.watch import watch
from worker.config import Settings
from worker.durations import parse_duration
from worker.engine.daemon import run_worker, worker_id
from worker.engine.runtimes import build_runtimes
from worker.errors import InputError
from worker.invoice import json_schema_text
from worker.store import database, migrate
from worker.store.accounts import AccountStore
from worker.store.database import Pool
from worker.store.outbox import Outbox
from worker.store.stats import gather_status, render_status

T = TypeVar("T")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(
        name: str, handler: Callable[..., int], help_: str, example: str
    ) -> argparse.ArgumentParser:
        label = "examples" if "\n" in example else "example"
        parser = commands.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=f"{label}:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler)
        return parser

    add(
        "migrate",
        cmd_migrate,
        "apply pending schema migrations (safe to run concurrently)",
        "invoice-sync --config invoice-sync.toml migrate",
    )
    run = add(
        "run",
        cmd_run,
        "run the worker daemon",
        "invoice-sync --config invoice-sync.toml run --drain",
    )
    run.add_argument(
        "--drain",
        action="store_true",
        help="exit 0 once nothing is pending or in flight (scheduled retries included)",
    )
    enqueue = add(
        "enqueue",
        cmd_enqueue,
        "bulk-load JSON Lines {account, idempotency_key, payload}",
        "invoice-sync --config invoice-sync.toml enqueue invoices.jsonl",
    )
    enqueue.add_argument("file", help="a JSON Lines file, or - for standard input")
    status = add(
        "status",
        cmd_status,
        "counts by account and state, dead letters by reason",
        "invoice-sync --config invoice-sync.toml status --json\n"
        "  invoice-sync --config invoice-sync.toml status --watch --until-drained",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument(
        "--watch",
        action="store_true",
        help="live progress per account while a load drains (Ctrl-C stops)",
    )
    status.add_argument(
        "--interval",
        default="1s",
        metavar="DURATION",
        help="with --watch: refresh interval (default 1s)",
    )
    status.add_argument(
        "--until-drained",
        action="store_true",
        help="with --watch: exit 0 once nothing is pending or in flight "
        "(rows held by paused accounts wait for an operator and do not count)",
    )
    add(
        "schema",
        cmd_schema,
        "print the canonical invoice's JSON Schema",
        "invoice-sync schema > invoice.schema.json",
    )
    add(
        "check-config",
        cmd_check_config,
        "validate the configuration and exit",
        "invoice-sync --config invoice-sync.toml check-config",
    )
    accounts = add(
        "accounts",
        cmd_accounts,
        "list, pause or resume provider accounts",
        "invoice-sync --config invoice-sync.toml accounts list\n"
        "  invoice-sync --config invoice-sync.toml accounts pause shop-billclap\n"
        "  invoice-sync --config invoice-sync.toml accounts resume shop-billclap",
    )
    accounts.add_argument("action", choices=["list", "pause", "resume"])
    accounts.add_argument("name", nargs="?", help="the account (for pause and resume)")
    sandbox = add(
        "sandbox",
        cmd_sandbox,
        "serve a provider sandbox on loopback",
        "invoice-sync sandbox --provider billclap --port 8081 --error-rate 0.05",
    )
    from worker.testing.sandbox.server import configure_parser  # noqa: PLC0415 - sandbox is optional at run time

    configure_parser(sandbox)
    dlq_commands.register(commands)
    demo = add(
        "demo",
        cmd_demo,
        "run everything end to end on an embedded PostgreSQL and local sandboxes",
        "invoice-sync demo --invoices 500 --data-dir ./invoice-sync-demo",
    )
    from worker.demo.arguments import configure_parser as configure_demo  # noqa: PLC0415

    configure_demo(demo)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(migrate.migrate(settings.database_dsn()))
    if applied:
        print(f"applied migrations: {', '.join(f'{v:03d}' for v in applied)}")
    else:
        print(f"nothing to apply: the schema is at version {migrate.latest_version():03d}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.accounts:
        raise InputError("no [accounts.NAME] configured: nothing to run")
    asyncio.run(run_worker(settings, drain=args.drain))
    return 0


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    accounts = frozenset(settings.accounts) if settings.accounts else None
    # Validation is CPU-bound: one parser process per core, the COPY in this one.
    parsers = min(os.cpu_count() or 1, MAX_ENQUEUE_PARSERS)
    with _lines_of(args.file) as lines:
        report = asyncio.run(
            _with_outbox(
                settings, lambda o: enqueue_lines(lines, o, accounts=accounts, parsers=parsers)
            )
        )
    for number, message in report.bad[:100]:
        print(f"line {number}: {message}", file=sys.stderr)
    if len(report.bad) > 100:
        print(f"... and {len(report.bad) - 100} more bad lines", file=sys.stderr)
    print(
        f"read {report.lines} lines: loaded {report.loaded}, already queued or synced "
        f"{report.repeated}, bad {len(report.bad)}"
    )
    return 1 if report.bad else 0


def _lines_of(file: str) -> contextlib.AbstractContextManager[TextIO]:
    """``enqueue``'s input: standard input for ``-`` (left open), else the file. Both are read
    as UTF-8 with ``surrogateescape``, whatever the locale: a line holding bytes that are not
    UTF-8 is then one bad line, reported by number, not a traceback that loses the rest."""
    if file == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):
            sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
        return contextlib.nullcontext(sys.stdin)
    try:
        return Path(file).open(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from exc


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    if args.watch:
        return _watch(args, settings)
    if args.until_drained:
        raise InputError("status --until-drained only goes with --watch")
    status = asyncio.run(_with_pool(settings, gather_status))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print(render_status(status))
    return 0


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    if args.json:
        raise InputError("status --watch draws a live view; --json is for a one-off status")
    try:
        interval = parse_duration(args.interval)
    except ValueError as exc:
        raise InputError(f"--interval: {exc}") from exc
    if interval <= 0:
        raise InputError("--interval must be more than zero")
    return asyncio.run(
        _with_pool(
            settings,
            lambda pool: watch(
                pool, interval=interval, until_drained=args.until_drained, out=sys.stdout
            ),
        )
    )


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json_schema_text())
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    runtimes = build_runtimes(settings)  # builds every adapter: catches provider option errors
    for name, runtime in runtimes.items():
        print(
            f"account {name}: {runtime.provider_name}, {runtime.gate.rate}, "
            f"concurrency {runtime.gate.concurrency}"
        )
    print("config OK")
    return 0


def cmd_accounts(args: argparse.Namespace, settings: Settings) -> int:
    if args.action != "list" and not args.name:
        raise InputError(f"accounts {args.action}: name the account")
    return asyncio.run(_with_pool(settings, lambda pool: _accounts(pool, args, settings)))


async def _accounts(pool: Pool, args: argparse.Namespace, settings: Settings) -> int:
    store = AccountStore(pool)
    if args.action == "pause":
        await store.account_pause(args.name, "paused by an operator")
        print(f"paused {args.name}")
        return 0
    if args.action == "resume":
        resumed = await store.account_resume(args.name)
        print(f"resumed {args.name}" if resumed else f"{args.name} was not paused")
        return 0
    states = {s.account: s for s in await store.account_state_list()}
    for name in sorted(set(settings.accounts) | set(states)):
        state = states.get(name)
        provider = (
            settings.accounts[name].provider if name in settings.accounts else "(not configured)"
        )
        if state is not None and state.paused:
            print(f"{name}  {provider}  paused: {state.pause_reason} ({state.pause_error})")
        else:
            print(f"{name}  {provider}  active")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from worker.demo.extra import require_demo_extra  # noqa: PLC0415

    require_demo_extra()  # before the import below, which needs rich
    from worker.demo.command import run_from_args  # noqa: PLC0415 - the demo extra's

    return run_from_args(args, settings)


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from worker.testing.sandbox.server import run_from_args  # noqa: PLC0415

    return run_from_args(args)


async def _with_pool(settings: Settings, action: Callable[[Pool], Awaitable[T]]) -> T:
    pool = await database.create_pool(settings.database_dsn(), min_size=1, max_size=2)
    try:
        return await action(pool)
    finally:
        await pool.close()


async def _with_outbox(settings: Settings, action: Callable[[Outbox], Awaitable[T]]) -> T:
    return await _with_pool(settings, lambda pool: action(Outbox(pool, worker_id=worker_id())))
