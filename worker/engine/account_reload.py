"""Follows ``invoice_sync.account`` while the daemon runs, so every replica works the accounts the
table holds now, without a restart.

The table's trigger NOTIFYs ``ACCOUNT_CHANNEL`` on every change; a LISTEN connection of its own
(``worker.engine.listener.Listener``) wakes the reload, and a poll every ``ACCOUNT_POLL`` seconds
covers for notifications lost while that connection was down. A reload first reads the table's
fingerprint (``account_fingerprint``) and stops there when it is unchanged; else it lists every
row (``list_accounts``: what the claim needs and the row's version, no secret opened), adds the
config file's accounts and hands the set to the engine (``Engine.replace_accounts``), which takes
it in before its next claim; an account whose version changed gets a new runtime, opened (its
new secret with it) when a claim next leases one of its rows.

A reload never stops the daemon: a row whose name the config file already uses, or whose
provider or rate is not one, is left out with an ``account.invalid`` log line (once, not again
at each reload while it stays as it is); so is, when the fleet opens it, one whose secret no key
opens or whose options are invalid. ``invoice_sync_accounts_invalid`` counts both. A database
outage waits for the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import structlog

from worker.engine.chores import Restarts, Supervised
from worker.engine.database_accounts import list_accounts
from worker.engine.fleet import Entry
from worker.engine.listener import Listener
from worker.engine.metrics import Metrics
from worker.engine.runtimes import CheckedAccount
from worker.errors import StoreError
from worker.store.account_rows import ACCOUNT_CHANNEL, account_fingerprint
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
        file_accounts: Mapping[str, CheckedAccount],
        pool: Pool,
        listen_dsn: str,
        apply: Callable[[dict[str, Entry]], None],
        current: Mapping[str, Entry],
        reported: Mapping[str, str] | None = None,
        fingerprint: str | None = None,
        metrics: Metrics | None = None,
        opened_invalid: Callable[[], int] = lambda: 0,
        poll: float = ACCOUNT_POLL,
    ) -> None:
        self._file_accounts = dict(file_accounts)
        self._pool = pool
        self._apply = apply
        self._current = current  # held, not copied: its owner hands it over
        # Invalid rows already named in the log (at start-up, or by the last reload), with why.
        self._reported = dict(reported or {})
        # The table's ``account_fingerprint`` as of ``current`` (None: unknown, read it all).
        self._fingerprint = fingerprint
        if metrics is not None:
            # Read when scraped: the rows left out here, and those the fleet (``opened_invalid``:
            # ``Fleet.invalid_count``) found unusable when it opened them.
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
        """Read the table now and hand the engine the accounts to work, if they changed."""
        # Read before the rows: a change committed in between is read again next time.
        fingerprint = await account_fingerprint(self._pool)
        if fingerprint == self._fingerprint:
            return
        listed = await list_accounts(
            self._pool, taken=self._file_accounts.keys(), reported=self._reported
        )
        accounts = listed.accounts
        accounts.update(self._file_accounts)
        self._reported = listed.invalid
        self._fingerprint = fingerprint
        if accounts == self._current:
            return
        # Lists, not sets of every name: a platform's table is large, its changes mostly small.
        added, changed = [], []
        for name, entry in accounts.items():
            before = self._current.get(name)
            if before is None:
                added.append(name)
            elif before != entry:
                changed.append(name)
        removed = [name for name in self._current if name not in accounts]
        added.sort()
        changed.sort()
        removed.sort()
        # Handed over, not copied (it is not changed after this): a copy of a hundred thousand
        # entries is megabytes.
        self._current = accounts
        self._apply(accounts)
        log.info(
            "accounts.reloaded",
            accounts=len(accounts),
            # Names up to a point: a platform adding thousands at once would make one huge line.
            added=added[:50],
            removed=removed[:50],
            changed=changed[:50],
            invalid=len(listed.invalid),
        )

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
