"""Start-up and signals for ``invoice-sync run``: connect, check the schema, build the accounts,
run the engine until drained or signalled."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from collections.abc import Mapping

import structlog

from worker.config import Settings
from worker.engine.account_reload import AccountReloader
from worker.engine.database_accounts import DatabaseLoader, check_config_names, check_keys
from worker.engine.fleet import Fleet, Loader, total_concurrency
from worker.engine.health import HealthServer, Vitals
from worker.engine.loop import Engine
from worker.engine.metrics import Metrics, MetricsRefresher
from worker.engine.otlp import exporting
from worker.engine.runtimes import CheckedAccount, RuntimeFactory, check_accounts, warn_insecure
from worker.errors import ConfigError, InputError, StoreError
from worker.store import database, migrate
from worker.store.account_rows import Fingerprint, account_fingerprint
from worker.store.database import Pool, StoreUnavailableError
from worker.store.outbox import Outbox

log = structlog.get_logger(__name__)

# The loop goes round at least every poll interval. While the database is down, a round is a
# failed connect (given up after 10 s) and a wait of at most 5 s (flusher.OUTAGE_BACKOFF_CAP):
# a loop silent for longer than this is stuck. A database that accepts connections but never
# answers holds a claim for asyncpg's command timeout (60 s), which reaches this floor.
LIVENESS_FLOOR = 60.0


def worker_id() -> str:
    """Unique per process: the lease owner written on every claimed row."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def worker_pool(dsn: str, concurrency: int) -> database.Pool:
    """The engine's pool. Its queries leave no session state behind: no reset round trip per
    statement. Their plans do not hang on their parameters' values (each account's rows are
    read through the same indexes however many there are): each is planned once per
    connection, not at every claim and flush."""
    return await database.create_pool(
        dsn,
        min_size=2,
        max_size=max(4, min(concurrency, 20)),
        reset_sessions=False,
        generic_plans=True,
    )


async def run_worker(settings: Settings, *, drain: bool) -> None:
    """The daemon, with its spans exported for the whole run when ``[observe] otlp_endpoint``
    is set."""
    async with exporting(settings.observe):
        await _run_engine(settings, drain=drain)


async def _run_engine(settings: Settings, *, drain: bool) -> None:
    dsn = settings.database_dsn()
    file_accounts = checked_accounts(settings)  # the file's mistakes first, before connecting
    fingerprint = await _database_accounts(settings, dsn, file_accounts)
    if not file_accounts and not fingerprint.enabled:
        raise InputError(
            "no account configured ([accounts.NAME] or `invoice-sync accounts add`): nothing to run"
        )
    # The table's accounts are not read (their number is): with any, a replica may make as
    # many calls as it is allowed to.
    concurrency = settings.worker.max_in_flight
    if not fingerprint.enabled:
        concurrency = min(total_concurrency(file_accounts.values()), concurrency)
    pool = await worker_pool(dsn, concurrency)
    health: HealthServer | None = None
    try:
        await _check_schema(pool)
        fleet = open_fleet(
            settings,
            file_accounts,
            loader=DatabaseLoader(pool, settings.keyring()),
            table_size=fingerprint.enabled,
        )
        metrics = Metrics(account_series=settings.observe.metrics_accounts)
        refresher = MetricsRefresher(pool, metrics, fleet.worked)
        engine = Engine(
            outbox=Outbox(pool, worker_id=worker_id()),
            runtimes=fleet,
            settings=settings.worker,
            listen_dsn=dsn,
            metrics=metrics,
            refresher=refresher,
        )
        reloader = AccountReloader(
            file_accounts=file_accounts.keys(),
            pool=pool,
            listen_dsn=dsn,
            apply=engine.replace_accounts,
            known=fleet.known_versions,
            fingerprint=fingerprint,
            metrics=metrics,
            opened_invalid=fleet.invalid_count,
        )
        listen = settings.observe.listen_on()
        if listen is not None:
            health = HealthServer(
                pool=pool,
                metrics=metrics,
                vitals=Vitals(heartbeat_age=engine.heartbeat_age, stopping=lambda: engine.stopping),
                stale_after=max(3 * settings.worker.poll_interval, LIVENESS_FLOOR),
            )
            await health.start(*listen)
        _install_signals(engine)
        reloader.start()
        try:
            await engine.run(drain=drain)
        finally:
            await reloader.stop()
    finally:
        if health is not None:
            await health.stop()
        await pool.close()


def checked_accounts(settings: Settings) -> dict[str, CheckedAccount]:
    """Every account of ``settings`` checked now (provider, options, its token readable), and
    those sending to plain http named once."""
    checked = check_accounts(settings)
    warn_insecure(checked)
    for name, account in checked.items():
        try:
            account.settings.resolve_token()
        except ConfigError as exc:
            raise ConfigError(f"accounts.{name}.{exc}") from exc
    return checked


def open_fleet(
    settings: Settings,
    accounts: Mapping[str, CheckedAccount],
    *,
    loader: Loader | None = None,
    table_size: int = 0,
) -> Fleet:
    """The config file's accounts, none opened: an account's adapter and HTTP session are made
    when it first has a row (and a database account read and its secret opened then, by
    ``loader``; ``table_size`` enabled rows in the table)."""
    return Fleet(
        accounts,
        opener=RuntimeFactory(settings).build,
        idle_timeout=settings.worker.account_idle_timeout,
        max_open=settings.worker.max_open_accounts,
        loader=loader,
        table_size=table_size,
    )


async def _database_accounts(
    settings: Settings, dsn: str, file_accounts: Mapping[str, CheckedAccount]
) -> Fingerprint:
    """The table's fingerprint (the reloader's starting point: it rereads anything only once
    that changes, and it counts the enabled rows), read before checking the table: one secret
    opened per key id (a missing or wrong key is an error naming an account) and the config
    file's names looked for (one in the table too is an error naming it). No row is read
    beyond those: the table's accounts are read as they get work."""
    # On a pool of one, before the engine's: its size follows the accounts' total concurrency.
    pool = await database.create_pool(dsn, min_size=1, max_size=1)
    try:
        await _check_schema(pool)  # the account table is in the schema: check it first
        fingerprint = await account_fingerprint(pool)
        await check_keys(pool, settings.keyring())
        await check_config_names(pool, file_accounts.keys())
        return fingerprint
    finally:
        await pool.close()


async def _check_schema(pool: Pool) -> None:
    try:
        current = await migrate.schema_version(pool)
    except StoreUnavailableError:
        raise
    except StoreError as exc:
        raise StoreError("the invoice_sync schema is missing: run `invoice-sync migrate`") from exc
    latest = migrate.latest_version()
    if current < latest:
        raise StoreError(
            f"the database schema is at version {current}, this worker needs {latest}: "
            "run `invoice-sync migrate`"
        )


def _install_signals(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal(signame: str) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("worker.signal", signal=signame, action="graceful shutdown")
            engine.stop()
        else:
            log.warning("worker.signal", signal=signame, action="forced shutdown")
            engine.force()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
