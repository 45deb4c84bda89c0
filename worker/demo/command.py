"""``invoice-sync demo``: the whole system end to end on embedded defaults.

Embedded PostgreSQL (or, with ``--use-configured-database``, the configured one: see
``worker.demo.configured``) -> one sandbox per account -> the config written to a file ->
migrate -> enqueue the sample mix -> the real worker (``run_worker``, the code behind
``run --drain``) with a live view -> the summary -> how to look around. Every way out (done,
error, Ctrl-C, SIGTERM) stops the sandboxes and the server, removes the demo's rows from a
configured database and removes the temporary directory; ``--data-dir`` keeps the directory.
``--serve`` keeps the database and the web console open after the summary until Ctrl-C, or
serves a directory a kept run filled (``worker.demo.serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console

from worker.cli.enqueue_blocks import enqueue_lines
from worker.config import Settings
from worker.demo import summary
from worker.demo.config_file import write_config
from worker.demo.configured import ignored_configuration, remove_rows
from worker.demo.plan import DemoPlan, build_plan
from worker.demo.progress import ProgressView
from worker.demo.serve import (
    CONSOLE_ADDRESS,
    CONSOLE_LISTEN,
    serve_kept,
    serve_until_stopped,
    write_admin_token,
)
from worker.demo.stack import (
    Workspace,
    embedded_server,
    fresh_database,
    make_private_dir,
    open_private,
    run_interruptibly,
    sandboxes,
    workspace,
)
from worker.engine.daemon import run_worker, worker_id
from worker.errors import InputError
from worker.logs import configure_logging
from worker.store import database, migrate
from worker.store.accounts import AccountStore
from worker.store.database import Pool
from worker.store.outbox import Outbox, WorkedAccounts
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.server import SandboxHandle

# A little of everything the worker must survive; see worker.testing.sandbox.faults.
FAULTS = FaultConfig(
    latency=0.005,
    jitter=0.03,
    error_rate=0.02,
    stall_rate=0.01,
    stall_seconds=4.0,
    rate429_rate=0.001,
    retry_after=0.5,
)


def run_from_args(args: argparse.Namespace, settings: Settings) -> int:
    """0 done, 130 interrupted, 2 bad usage; errors raise ``InvoiceSyncError`` (exit 1)."""
    configured = args.use_configured_database
    if configured and settings.database_url is None:
        raise InputError(
            "demo --use-configured-database: no database is configured (database_url "
            "or database_url_file, INVOICE_SYNC_DATABASE_URL[_FILE])"
        )
    if configured and args.serve:
        raise InputError(
            "demo --serve keeps the demo's own database open; on a configured database the "
            "demo removes its rows, so run `invoice-sync console` there instead"
        )
    if args.serve and args.data_dir is not None and holds_database(args.data_dir):
        with sigterm_as_sigint():
            return serve_kept(Workspace(args.data_dir.resolve(), kept=True))
    run = f"demo-{secrets.token_hex(3)}"
    try:
        plan = build_plan(
            PROFILES,
            invoices=args.invoices,
            seed=args.seed,
            run=run,
            today=date.today(),
            account_prefix=f"{run}-" if configured else "",
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    notice = None if configured else ignored_configuration(args.config)
    if notice is not None:
        print(notice, flush=True)
    if args.data_dir is not None:
        try:
            make_private_dir(args.data_dir)
        except OSError as exc:
            raise InputError(f"--data-dir {args.data_dir}: {exc.strerror}") from exc
    faults = None if args.no_faults else FAULTS.updated({"seed": args.seed})
    try:
        with sigterm_as_sigint(), workspace(args.data_dir) as space:
            demo = Demo(space=space, plan=plan, faults=faults, console=_console(), serve=args.serve)
            return demo.start(settings)
    except KeyboardInterrupt:
        return interrupted(args.data_dir, configured=configured)


def holds_database(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds the database of an earlier ``--data-dir`` run."""
    return (Workspace(data_dir.resolve(), kept=True).pgdata / "PG_VERSION").is_file()


@contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """A SIGTERM takes the same careful way out as a Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _restored(logging_config: dict[str, Any]) -> Iterator[None]:
    """Put structlog back as it was: the demo's log file closes when the demo ends."""
    try:
        yield
    finally:
        structlog.configure(**logging_config)


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and console.width < 100:
        console.width = 100  # a pipe or a log file: room for the tables, links wrap as text
    return console


def interrupted(data_dir: Path | None, *, configured: bool) -> int:
    files = f"kept in {data_dir}" if data_dir else "removed"
    database = (
        "its rows are removed from the configured database"
        if configured
        else ("the database is stopped")
    )
    print(
        f"invoice-sync demo: interrupted; {database}, the sandboxes are stopped, "
        f"the demo's files {files}",
        file=sys.stderr,
    )
    return 130


class Demo:
    """One run: the steps between "the database is up" and the summary."""

    def __init__(
        self,
        *,
        space: Workspace,
        plan: DemoPlan,
        faults: FaultConfig | None,
        console: Console,
        serve: bool,
    ) -> None:
        self.space, self.plan, self.faults, self.console = space, plan, faults, console
        self.serve = serve

    def start(self, settings: Settings) -> int:
        """Bring up the database (the configured one, else the embedded server) and run."""
        logging_before = structlog.get_config()
        with open_private(self.space.log) as log, _restored(logging_before):
            configure_logging(fmt="json", level=settings.observe.log_level, stream=log)
            if settings.database_url is not None:
                self.console.print("Using the configured database (database_url).")
                dsn = settings.database_dsn()
                return run_interruptibly(lambda: self.run(dsn, embedded=False))
            self.console.print("Starting the embedded PostgreSQL ...")
            started = time.monotonic()
            with embedded_server(self.space) as url:
                self.console.print(f"  ready in {time.monotonic() - started:.1f} s.")
                return run_interruptibly(lambda: self.run(url, embedded=True))

    async def run(self, server_url: str, *, embedded: bool) -> int:
        dsn = await fresh_database(server_url) if embedded else server_url
        async with sandboxes(self.plan.accounts, self.faults) as handles:
            urls = [(a, handles[a.name].url) for a in self.plan.accounts]
            for account, url in urls:
                self.console.print(
                    f"Sandbox for {account.name} ({account.profile.provider}): {url}"
                )
            settings = write_config(
                self.space.config,
                database_url=dsn,
                accounts=urls,
                header=self._config_header(),
                console={
                    "listen": CONSOLE_LISTEN,
                    "admin_token_file": str(write_admin_token(self.space.admin_token)),
                },
            )
            self.console.print(
                f"Config: {self.space.config}\n  while the demo runs, from another terminal: "
                f"invoice-sync --config {self.space.config} status",
                soft_wrap=True,
            )
            await migrate.migrate(dsn)
            pool = await database.create_pool(dsn, min_size=1, max_size=3)
            try:
                outcome = await self._run_in(pool, settings, handles)
            finally:
                if not embedded:  # a shared database: leave nothing of this run behind
                    await remove_rows(pool, [a.name for a in self.plan.accounts])
                await pool.close()
        if outcome is None:  # the worker stopped early: a signal reached it
            return interrupted(
                self.space.root if self.space.kept else None, configured=not embedded
            )
        summary.render(self.console, self.plan, outcome)
        self._look_around(embedded)
        if self.serve:
            await serve_until_stopped(settings, self.space)
        return 0

    async def _run_in(
        self, pool: Pool, settings: Settings, handles: dict[str, SandboxHandle]
    ) -> summary.Outcome | None:
        """Enqueue, drain and gather the summary; None when the worker was stopped early."""
        for account in self.plan.accounts:
            await AccountStore(pool).account_resume(account.name)  # an earlier run's pause
        await self._enqueue(pool, settings)
        started = time.monotonic()
        await self._drain(pool, settings)
        seconds = time.monotonic() - started
        unfinished, _held = await Outbox(pool, worker_id="demo").outbox_unfinished(
            WorkedAccounts([a.name for a in self.plan.accounts])
        )
        if unfinished:
            return None
        return await summary.gather(pool, self.plan, handles, seconds)

    async def _enqueue(self, pool: Pool, settings: Settings) -> None:
        """Load the mix through the ``invoice-sync enqueue`` code; the lines it refuses are
        written straight to the outbox, as a producer's own SQL could, for the worker to
        dead-letter unsent."""
        outbox = Outbox(pool, worker_id=worker_id())
        lines = [
            json.dumps(
                {"account": r.account, "idempotency_key": r.idempotency_key, "payload": r.payload}
            )
            for r in self.plan.rows
        ]
        report = await enqueue_lines(lines, outbox, accounts=frozenset(settings.accounts))
        refused = [self.plan.rows[number - 1] for number, _ in report.bad]
        await outbox.enqueue_many(
            [(r.account, r.idempotency_key, json.dumps(r.payload), None, None) for r in refused]
        )
        self.console.print(
            f"Enqueued {report.loaded} invoices for {len(self.plan.accounts)} accounts; the "
            f"check that `invoice-sync enqueue` makes refused {len(refused)} malformed ones, which the demo "
            "then wrote straight to the outbox, as a careless producer's SQL could.",
            soft_wrap=True,
        )

    async def _drain(self, pool: Pool, settings: Settings) -> None:
        self.console.print("Running the worker until the outbox drains (Ctrl-C stops it).\n")
        stop = asyncio.Event()
        watcher = asyncio.create_task(ProgressView(pool, self.plan, self.console).watch(stop))
        try:
            await run_worker(settings, drain=True)
        finally:
            stop.set()
            await asyncio.gather(watcher, return_exceptions=True)

    def _config_header(self) -> str:
        return (
            f"Written by `invoice-sync demo` (run {self.plan.run}): the config it ran with.\n"
            "Its database_url and base_url values live only while the demo runs (or, for a\n"
            "--data-dir database, while `invoice-sync demo --data-dir DIR --serve` runs);\n"
            "its [worker], [http] and account layout are a starting point for your own."
        )

    def _look_around(self, embedded: bool) -> None:
        out = self.console
        out.print("\n[bold]Look around[/bold]")
        if not self.space.kept and not self.serve:
            self._gone(embedded)
            return
        if self.space.kept:
            out.print(
                f"Kept in {self.space.root}: {self.space.config.name} (the config), "
                f"{self.space.log.name} (the worker's JSON log), {self.space.admin_token.name} "
                "(the console's admin token)" + (", pgdata/ (the database)." if embedded else "."),
                soft_wrap=True,
            )
        if self.serve:
            out.print("The database stays up with the web console below; from another terminal:")
        elif embedded:
            out.print(
                f"The embedded PostgreSQL stopped with the demo. Start it again, with the web "
                f"console at {CONSOLE_ADDRESS}, in one terminal:\n"
                f"  invoice-sync demo --data-dir {self.space.root} --serve\nand in another:",
                soft_wrap=True,
            )
        for command in LOOK_AROUND:
            out.print(f"  invoice-sync --config {self.space.config} {command}", soft_wrap=True)
        out.print("(The sandboxes are gone: `run` with this config would find no provider.)")

    def _gone(self, embedded: bool) -> None:
        """What to run next when nothing of the demo is left."""
        where = "the embedded PostgreSQL, " if embedded else ""
        self.console.print(
            f"The demo has ended: {where}the sandboxes and its temporary directory are gone. "
            "To keep the database and look at it afterwards, run:\n"
            "  invoice-sync demo --data-dir ./invoice-sync-demo",
            soft_wrap=True,
        )
        if not embedded:
            self.console.print("The demo removed its rows from your database.")
            return
        self.console.print(
            f"To see the run in your browser, add --serve: the demo then ends with the web "
            f"console open at {CONSOLE_ADDRESS} until Ctrl-C.",
            soft_wrap=True,
        )


LOOK_AROUND = ("status", "dlq list", "accounts list")
"""Commands the summary suggests next (a test checks that the command line has each)."""
