"""Follows ``invoice_sync.account`` while the daemon runs, so every replica works the accounts the
table holds now, without a restart.

The table's trigger NOTIFYs ``ACCOUNT_CHANNEL`` on every change; a LISTEN connection of its own
(``worker.engine.listener.Listener``) wakes the reload, and a poll every ``ACCOUNT_POLL`` seconds
covers for notifications lost while that connection was down. A reload first reads the table's
change counter (``account_generation``, one row, bumped by every changing statement, migration
016) and stops there when it is unchanged; else it counts the enabled rows
(``account_fingerprint``) and rereads the
versions of the rows this replica knows, and only those (``account_versions``: the database
accounts it has open or left out, which are bounded, never the whole table), and hands them to
the engine (``Engine.replace_accounts``), which takes them in before its next claim: an account
whose row changed, or was removed or disabled, leaves service (its calls in flight finish on
the runtime they started with); a changed one is read again, its new secret with it, when a
claim next names it. An account added to the table needs no reload: a claim reads it when its
first rows are due.

A reload never stops the daemon: a row whose name the config file already uses is left out with
an ``account.invalid`` log line (once, not again at each reload while it stays); so is, when a
claim reads it, one whose secret no key opens or whose settings are invalid.
``invoice_sync_accounts_invalid`` counts both. A database outage waits for the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping

import structlog

from worker.engine.chores import Restarts, Supervised
from worker.engine.database_accounts import in_both_places
from worker.engine.fleet import TableChange
from worker.engine.listener import Listener
from worker.engine.metrics import Metrics
from worker.errors import StoreError
from worker.store.account_rows import (
    ACCOUNT_CHANNEL,
    AccountVersion,
    Fingerprint,
    account_fingerprint,
    account_generation,
    account_versions,
)
from worker.store.database import Pool

log = structlog.get_logger(__name__)

# The fallback poll: a change is seen within this long even when its notification was lost.
ACCOUNT_POLL = 30.0
RELOAD_RESTARTS = Restarts(first=1.0, cap=30.0)
# `accounts.reloaded` names accounts up to this many per field: a platform changing thousands
# at once would make one huge line.
RELOADED_NAMES = 50


class AccountReloader:
    """Rereads the accounts its replica knows on each notification and every ``poll`` seconds."""

    def __init__(
        self,
        *,
        file_accounts: Collection[str],
        pool: Pool,
        listen_dsn: str,
        apply: Callable[[TableChange], None],
        known: Callable[[], Mapping[str, int | None]],
        fingerprint: Fingerprint | None = None,
        metrics: Metrics | None = None,
        opened_invalid: Callable[[], int] = lambda: 0,
        poll: float = ACCOUNT_POLL,
    ) -> None:
        self._file_accounts = sorted(file_accounts)
        self._pool = pool
        self._apply = apply
        self._known = known  # the fleet's database accounts, by the version it knows them at
        # Table rows named like a config file's account, already named in the log, with why.
        self._reported: dict[str, str] = {}
        # The table's ``account_fingerprint`` as of the last reload (None: read at once).
        self._fingerprint = fingerprint
        if metrics is not None:
            # Read when scraped: the rows left out here, and those the fleet (``opened_invalid``:
            # ``Fleet.invalid_count``) found unusable when a claim read them.
            metrics.accounts_invalid.set_function(
                lambda: float(len(self._reported) + opened_invalid())
            )
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
        """Read the table's fingerprint now and, if it changed, hand the engine the current
        versions of the accounts its fleet knows."""
        # One row while nothing changed, however many accounts the table holds.
        last = self._fingerprint
        if last is not None and await account_generation(self._pool) == last.value:
            return
        # Read before the rows: a change committed in between is read again next time.
        fingerprint = await account_fingerprint(self._pool)
        if fingerprint == last:
            return
        known = dict(self._known())
        rows = await account_versions(self._pool, [*known, *self._file_accounts])
        self._note_config_names(rows)
        versions = {name: _version(rows.get(name)) for name in known}
        self._fingerprint = fingerprint
        self._apply(TableChange(versions=versions, enabled=fingerprint.enabled))
        changed: list[str] = []
        removed: list[str] = []
        for name, version in versions.items():
            before = known[name]
            if before is None or version == before:
                continue  # unchanged, or not in the table before (or being read then)
            (removed if version is None else changed).append(name)
        log.info(
            "accounts.reloaded",
            # The accounts to work: the table's enabled rows and the config file's.
            accounts=fingerprint.enabled + len(self._file_accounts),
            reread=len(known),
            changed=sorted(changed)[:RELOADED_NAMES],
            removed=sorted(removed)[:RELOADED_NAMES],
            invalid=len(self._reported),
        )

    def _note_config_names(self, rows: Mapping[str, AccountVersion]) -> None:
        """Name once each table row that has a config file account's name: the config's is
        kept (start-up refuses it; here, added since, the running replica goes on)."""
        reported = {
            name: in_both_places(name, "the config's is kept")
            for name in self._file_accounts
            if name in rows
        }
        for name, error in reported.items():
            if self._reported.get(name) != error:
                log.warning("account.invalid", account=name, error=error)
        self._reported = reported

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


def _version(row: AccountVersion | None) -> int | None:
    """The version a claim would read the row at; None when it would not read it."""
    return row.version if row is not None and row.enabled else None
