"""``invoice-sync console``: serve the console on ``[console] listen`` until a signal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from worker.config import Settings
from worker.config.database_url import dsn_location
from worker.console.app import build_app
from worker.console.auth import AdminAuth
from worker.console.overview import ConfiguredAccount
from worker.errors import StoreError
from worker.store import database, migrate

log = structlog.get_logger("worker.console")


def admin_auth(settings: Settings) -> AdminAuth | None:
    """The admin credential, or None for a read-only console."""
    token = settings.console.admin_token()
    if token is None:
        return None
    return AdminAuth(
        user=settings.console.admin_user, token=token, ttl=settings.console.session_ttl
    )


def configured_accounts(settings: Settings) -> dict[str, ConfiguredAccount]:
    return {
        name: ConfiguredAccount(
            provider=account.provider,
            rate_limit=str(account.rate_limit),
            concurrency=account.concurrency,
        )
        for name, account in settings.accounts.items()
    }


async def serve_console(
    settings: Settings, *, started: Callable[[str], Awaitable[None] | None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; ``started`` is told the address once it listens."""
    dsn = settings.database_dsn()
    auth = admin_auth(settings)
    pool = await database.create_pool(dsn, min_size=1, max_size=4)
    try:
        await _check_schema(pool)
    except StoreError:
        await pool.close()
        raise
    app = build_app(
        pool,
        auth=auth,
        accounts=configured_accounts(settings),
        database=dsn_location(dsn),
        hosts=settings.console.hosts(),
        secure_cookies=settings.console.cookies_secure(),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        host, port = settings.console.listen_on()
        site = web.TCPSite(runner, host, port)
        await site.start()
        address = _address(site)
        log.info("console.started", address=address, read_only=auth is None)
        if started is not None:
            outcome = started(address)
            if outcome is not None:
                await outcome
        await _until_signalled()
    finally:
        await runner.cleanup()
        await pool.close()


async def _check_schema(pool: database.Pool) -> None:
    """The console reads the indexes and tables of the latest migration: refuse an older
    schema with the command that fixes it."""
    current = await migrate.schema_version(pool)
    if current < migrate.latest_version():
        raise StoreError(
            f"the database schema is at version {current}, the console needs "
            f"{migrate.latest_version()}: run `invoice-sync migrate`"
        )


def _address(site: web.TCPSite) -> str:
    server = site._server
    assert server is not None
    host, port = server.sockets[0].getsockname()[:2]  # type: ignore[attr-defined]
    return f"http://{host if ':' not in host else f'[{host}]'}:{port}/"


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
