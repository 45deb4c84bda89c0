"""Follows ``invoice_sync.account`` while the daemon runs, so every replica works the accounts the
table holds now, without a restart.

The table's trigger NOTIFYs ``ACCOUNT_CHANNEL`` on every change; a LISTEN connection of its own
(``worker.engine.listener.Listener``) wakes the reload, and a poll every ``ACCOUNT_POLL`` seconds
covers for notifications lost while that connection was down. A reload first reads the table's
fingerprint (``account_fingerprint``) and stops there when it is unchanged; else it reads every
row, opens and checks them (``load_accounts``), adds the config file's accounts and hands the
set to the engine (``Engine.replace_accounts``), which takes it in before its next claim.

A reload never stops the daemon: a row whose secret no key opens, whose settings are invalid or
whose name the config file already uses is left out with an ``account.invalid`` log line (once,
not again at each reload while it stays as it is) and counted in
``invoice_sync_accounts_invalid``; a database outage waits for the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import structlog

from worker.config import Settings
from worker.config.accounts import AccountSettings
from worker.engine.chores import Restarts, Supervised
from worker.engine.database_accounts import load_accounts
from worker.engine.listener import Listener
from worker.engine.metrics import Metrics
from worker.engine.runtimes import CheckedAccount, check_account
from worker.errors import ConfigError, StoreError
from worker.logs import REDACTOR
from worker.store.account_rows import ACCOUNT_CHANNEL, account_fingerprint, account_rows
from worker.store.database import Pool

log = structlog.get_logger(__name__)

# The fallback poll: a change is seen within this long even when its notification was lost.
ACCOUNT_POLL = 30.0
RELOAD_RESTARTS = Restarts(first=1.0, cap=30.0)


class AccountReloader:
    """Reloads the database's accounts on each notification and every ``poll`` seconds."""

    def __init__(
        self,
        *,
        settings: Settings,
        file_accounts: Mapping[str, CheckedAccount],
        pool: Pool,
        listen_dsn: str,
        apply: Callable[[dict[str, CheckedAccount]], None],
        current: Mapping[str, CheckedAccount],
        reported: Mapping[str, str] | None = None,
        fingerprint: str | None = None,
        metrics: Metrics | None = None,
        poll: float = ACCOUNT_POLL,
    ) -> None:
        self._keyring = settings.keyring()
        self._file_accounts = dict(file_accounts)
        self._pool = pool
        self._apply = apply
        self._current = dict(current)
        # Invalid rows already named in the log (at start-up, or by the last reload), with why.
        self._reported = dict(reported or {})
        # The table's ``account_fingerprint`` as of ``current`` (None: unknown, read it all).
        self._fingerprint = fingerprint
        self._metrics = metrics
        self._poll = poll
        self._changed = asyncio.Event()
        # Its own connection: the outbox listener's sets the engine's wake-up, this one a reload.
        self._listener = Listener(
            listen_dsn, self._changed, channel=ACCOUNT_CHANNEL, name="account_listener"
        )
        self._supervised = Supervised("account_reload", self._run, RELOAD_RESTARTS)

    def start(self) -> None:
        self._listener.start()
        self._supervised.start()

    async def stop(self) -> None:
        await self._supervised.stop()
        await self._listener.stop()

    async def reload(self) -> None:
        """Read the table now and hand the engine the accounts to work, if they changed."""
        # Read before the rows: a change committed in between is read again next time.
        fingerprint = await account_fingerprint(self._pool)
        if fingerprint == self._fingerprint:
            return
        rows = await account_rows(self._pool)
        loaded = load_accounts(rows, self._keyring, skip_unopenable=True, reported=self._reported)
        REDACTOR.add(loaded.secrets)
        invalid = dict(loaded.invalid)
        accounts = dict(self._file_accounts)
        for name, settings in loaded.accounts.items():
            try:
                accounts[name] = self._checked(name, settings)
            except ConfigError as exc:
                invalid[name] = str(exc)
                if self._reported.get(name) != str(exc):
                    log.warning("account.invalid", account=name, error=str(exc))
        self._reported = invalid
        self._fingerprint = fingerprint
        if self._metrics is not None:
            self._metrics.accounts_invalid.set(len(invalid))
        if accounts == self._current:
            return
        added = sorted(accounts.keys() - self._current.keys())
        removed = sorted(self._current.keys() - accounts.keys())
        changed = sorted(
            name
            for name in accounts.keys() & self._current.keys()
            if accounts[name] != self._current[name]
        )
        self._current = accounts
        self._apply(dict(accounts))
        log.info(
            "accounts.reloaded",
            accounts=len(accounts),
            # Names up to a point: a platform adding thousands at once would make one huge line.
            added=added[:50],
            removed=removed[:50],
            changed=changed[:50],
            invalid=len(invalid),
        )

    def _checked(self, name: str, settings: AccountSettings) -> CheckedAccount:
        if name in self._file_accounts:
            raise ConfigError(
                f"accounts.{name}: defined both in the config and in the database "
                "(invoice_sync.account); the config's is kept"
            )
        return check_account(name, settings)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._poll)
            # Cleared before reading: a change committed during the read sets it again.
            self._changed.clear()
            try:
                await self.reload()
            except StoreError as exc:
                log.warning("accounts.reload_failed", error=str(exc), retry_in=self._poll)
                continue
            self._supervised.succeeded()
