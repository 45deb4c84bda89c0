"""The accounts this process may work, and the runtimes of those that have work right now.

A config file's account is checked at start (provider, options, token source), which opens
nothing. A database-held account is not read at start at all: the fleet learns of it when a
claim's walk of the accounts with due rows names it (``prepare``: the claim's new names read,
by the walk's own statement, which brings the ready accounts' rows along, their secrets opened
and their options checked, through the ``Loader``). One
found unusable then (a secret no key opens, options or a rate its provider refuses), or not in
the table, or disabled, is remembered (``max_open`` of them at most, the least recently named
forgotten first) with its row's version, so that it is not read again at every claim, until a
reload sees its row change; an unusable one is named once (``account.invalid``), its rows left
pending.

An account's runtime (adapter, HTTP session, caches, limits) is made when a claim first leases
one of its rows, and closed once it has had nothing in flight for ``idle_timeout``, or sooner
when more than ``max_open`` are open (the least recently used idle ones first). So memory and
the claim's cost follow the accounts that have work, not the accounts configured: a table of a
hundred thousand idle merchants costs a replica what ten do.

A closed runtime's in-process state goes with it: the aiolimiter spacing (the deployment-wide
token bucket is in the database and stays) and the breaker's count of recent failures.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, KeysView, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Self

import structlog

from worker.engine.depth import FLOOR_CALLS
from worker.engine.limits import claim_request
from worker.engine.runtimes import AccountRuntime, CheckedAccount
from worker.errors import ConfigError
from worker.store.account_rows import ReadAccounts
from worker.store.outbox import ClaimRequest, WorkedAccounts

log = structlog.get_logger(__name__)


class Loaded(NamedTuple):
    """A database account as a claim read it: its row's version (which changes with any
    column of the row), and the account checked, or one line saying why it cannot run."""

    version: int
    account: CheckedAccount | str


Opener = Callable[[str, CheckedAccount], AccountRuntime]


class Loader(Protocol):
    """Reads and checks the named database accounts; a name left out is not in the table or is
    disabled. ``read``: rows already read (the claim's walk brought them), used instead of a
    query when they hold every name."""

    def __call__(
        self, names: list[str], read: ReadAccounts | None = None
    ) -> Awaitable[dict[str, Loaded]]: ...


class TableChange(NamedTuple):
    """What a reload found: the current version of each database account the fleet knew
    (None: removed or disabled), and how many of the table's rows are enabled."""

    versions: dict[str, int | None]
    enabled: int


@dataclass(slots=True)
class _Held:
    """An open account. Mutable: ``used`` moves on with every row the account is given and
    finishes, and a new tuple for each was a microsecond of a row's bookkeeping."""

    runtime: AccountRuntime
    used: float
    version: int | None
    """The row's version a database account was opened at; None for a config file's."""


class _LeftOut(NamedTuple):
    version: int | None
    """The row's version when it was found unusable; None: not in the table, or disabled."""
    error: str | None


class Fleet:
    """The config file's accounts, the database accounts known so far (open, or left out),
    and the open runtimes among them (LRU order)."""

    def __init__(
        self,
        accounts: Mapping[str, CheckedAccount],
        *,
        opener: Opener,
        idle_timeout: float,
        max_open: int,
        loader: Loader | None = None,
        table_size: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._file = dict(accounts)
        self._opener = opener
        self._loader = loader
        # Enabled rows of the table as of the last reload (or start-up): the fleet knows only
        # those it opened, so this says whether it knows them all.
        self._table_size = table_size
        # Database accounts ``prepare`` read for the claim under way.
        self._ready: dict[str, Loaded] = {}
        # Names ``prepare`` is reading now: a reload meanwhile must reread them too.
        self._loading: Collection[str] = ()
        self._left_out: OrderedDict[str, _LeftOut] = OrderedDict()
        self._idle_timeout = idle_timeout
        self._max_open = max_open
        self._clock = clock
        self._open: OrderedDict[str, _Held] = OrderedDict()
        self._fixed: dict[str, AccountRuntime] | None = None

    @classmethod
    def of(cls, runtimes: Mapping[str, AccountRuntime]) -> Self:
        """Runtimes built beforehand (tests, embedded use): always open, closed at the end."""
        fleet = cls({}, opener=_no_opener, idle_timeout=float("inf"), max_open=len(runtimes))
        fleet._fixed = dict(runtimes)
        return fleet

    def file_names(self) -> KeysView[str]:
        """The config file's accounts (or the runtimes given to ``of``)."""
        return self._fixed.keys() if self._fixed is not None else self._file.keys()

    def worked(self) -> WorkedAccounts:
        """The accounts this fleet works, as the queries counting their rows take them: the
        config file's, and the table's enabled ones (when it has a loader) less those it found
        unusable."""
        database = self._fixed is None and self._loader is not None
        return WorkedAccounts(list(self.file_names()), database, self.unusable())

    def table_size(self) -> int:
        """Enabled rows of the table, as of the last reload."""
        return self._table_size

    def every_account(self, at_most: int) -> list[str] | None:
        """Every account this fleet works, by name, when they are at most ``at_most`` and it
        knows them all (each enabled database account has a runtime); else None."""
        if self._fixed is not None:
            return sorted(self._fixed) if len(self._fixed) <= at_most else None
        if len(self._file) + self._table_size > at_most:
            return None
        opened = [name for name, held in self._open.items() if held.version is not None]
        if len(opened) != self._table_size:
            return None
        return sorted([*self._file, *opened])

    def __contains__(self, name: object) -> bool:
        """Whether a claim may lease rows of ``name`` now: a config file's account, or a
        database account open or read for this claim."""
        if self._fixed is not None:
            return name in self._fixed
        return name in self._file or name in self._open or name in self._ready

    def invalid_count(self) -> int:
        """Database accounts left out because they are unusable (until their row changes)."""
        return sum(1 for left in self._left_out.values() if left.error is not None)

    def unusable(self) -> list[str]:
        """The database accounts left out because they are unusable: their rows wait."""
        return [name for name, left in self._left_out.items() if left.error is not None]

    def known_versions(self) -> dict[str, int | None]:
        """The database accounts this fleet knows, with the version it knows them at (None: not
        in the table, disabled, or being read now): what a reload rereads. As many as are open,
        left out and being read: bounded, whatever the table holds."""
        known: dict[str, int | None] = {
            name: held.version for name, held in self._open.items() if held.version is not None
        }
        known.update((name, left.version) for name, left in self._left_out.items())
        known.update((name, loaded.version) for name, loaded in self._ready.items())
        known.update(dict.fromkeys(self._loading))
        return known

    def open_count(self) -> int:
        return len(self._fixed) if self._fixed is not None else len(self._open)

    def provider_name(self, name: str) -> str:
        runtime = self._peek(name)
        if runtime is not None:
            return runtime.provider_name
        return self._account(name)[0].spec.name

    def room(self, name: str) -> int:
        """Rows ``name`` may be given now: its gate's room when open, a new gate's when not."""
        runtime = self._peek(name)
        if runtime is not None:
            return runtime.gate.free()
        return FLOOR_CALLS * self._account(name)[0].settings.concurrency

    def claimed(self, names: Iterable[str], seconds: float) -> None:
        """A claim for these accounts took ``seconds``: those open size their lease depth by
        it (``worker.engine.depth``)."""
        for name in names:
            runtime = self._peek(name)
            if runtime is not None:
                runtime.gate.depth.claimed(seconds)

    def claim_request(self, name: str, rows: int) -> ClaimRequest:
        """``rows`` of ``name`` with its deployment-wide bucket, without opening it."""
        runtime = self._peek(name)
        if runtime is not None:
            return runtime.gate.claim_request(rows)
        settings = self._account(name)[0].settings
        return claim_request(rows, settings.rate_limit, settings.rate_burst)

    def reads_table(self) -> bool:
        """Whether ``prepare`` may read accounts from the table (so a claim's walk should bring
        their rows along)."""
        return self._fixed is None and self._loader is not None and bool(self._table_size)

    async def prepare(self, names: Iterable[str], read: ReadAccounts | None = None) -> None:
        """Read the database accounts among ``names`` (a claim's, with due rows) that this
        fleet does not know yet, all in one go (the ``Loader``: one query), before the claim
        computes their room and rate: those usable are in the fleet for this claim; the others
        are remembered as left out (an unusable one named once), their rows pending. ``read``:
        the rows the walk brought, which spare the query when they cover every new name."""
        self._ready.clear()
        if self._loader is None or not self._table_size:
            return  # nothing in the table to find (a reload that adds some says so)
        wanted = [name for name in names if self._unknown(name)]
        if not wanted:
            return
        self._loading = wanted
        try:
            found = await self._loader(wanted, read)
        finally:
            self._loading = ()
        for name in wanted:
            loaded = found.get(name)
            if loaded is None:
                self._leave_out(name, _LeftOut(None, None))
            elif isinstance(loaded.account, CheckedAccount):
                self._ready[name] = loaded
            else:
                log.warning("account.invalid", account=name, error=loaded.account)
                self._leave_out(name, _LeftOut(loaded.version, loaded.account))

    def runtime(self, name: str) -> AccountRuntime:
        """The account's runtime, opened now if it is not (``ConfigError`` if it cannot be:
        a token file gone since start, a database account ``prepare`` did not read); marks it
        used."""
        if self._fixed is not None:
            return self._fixed[name]
        held = self._open.get(name)
        if held is None:
            account, version = self._account(name)
            runtime = self._opener(name, account)
            log.debug("account.opened", account=name)
            self._open[name] = _Held(runtime, self._clock(), version)
            return runtime
        held.used = self._clock()
        self._open.move_to_end(name)
        return held.runtime

    def touch(self, name: str) -> None:
        """The account just finished a row: its idle time counts from now."""
        held = self._open.get(name)
        if held is not None:
            held.used = self._clock()
            self._open.move_to_end(name)

    def retire(self) -> list[AccountRuntime]:
        """Take out of service the runtimes idle past the timeout, and the least recently
        used idle ones beyond ``max_open``; returns them for the caller to close (``aclose``
        awaits). One with rows in flight is never taken."""
        if self._fixed is not None or not self._open:
            return []
        horizon = self._clock() - self._idle_timeout
        retired: list[AccountRuntime] = []
        for name, held in list(self._open.items()):
            over = len(self._open) > self._max_open
            if held.used > horizon and not over:
                break  # LRU order: the rest were used later
            if held.runtime.gate.inflight:
                continue
            del self._open[name]
            retired.append(held.runtime)
        return retired

    def replace(self, change: TableChange) -> list[AccountRuntime]:
        """Take in a reload: the runtimes of database accounts whose row changed, or that
        were removed or disabled, leave service (returned for closing once their rows in
        flight finish, which hold their own reference; a changed one is read again when a
        claim next names it); those left out whose row changed are forgotten (read again when
        a claim next names them). Accounts not in ``change`` (learned since it was read) stay."""
        retired = []
        for name, version in change.versions.items():
            held = self._open.get(name)
            if held is not None and held.version is not None and held.version != version:
                del self._open[name]
                retired.append(held.runtime)
            left = self._left_out.get(name)
            if left is not None and left.version != version:
                del self._left_out[name]
        self._ready.clear()
        self._table_size = change.enabled
        return retired

    def open_runtimes(self) -> Iterable[AccountRuntime]:
        if self._fixed is not None:
            return list(self._fixed.values())
        return [held.runtime for held in self._open.values()]

    def _unknown(self, name: str) -> bool:
        """Whether ``name`` is neither a config file's account, nor open, nor left out (which
        it then counts as recently named, for the bound on those)."""
        if name in self._file or name in self._open:
            return False
        if name in self._left_out:
            self._left_out.move_to_end(name)
            return False
        return True

    def _leave_out(self, name: str, left: _LeftOut) -> None:
        self._left_out[name] = left
        self._left_out.move_to_end(name)
        while len(self._left_out) > self._max_open:
            self._left_out.popitem(last=False)

    def _account(self, name: str) -> tuple[CheckedAccount, int | None]:
        """A config file's account (no version), or a database account read for this claim."""
        checked = self._file.get(name)
        if checked is not None:
            return checked, None
        loaded = self._ready.get(name)
        if loaded is None or not isinstance(loaded.account, CheckedAccount):
            raise ConfigError(f"account {name}: not opened before its rows were claimed")
        return loaded.account, loaded.version

    def _peek(self, name: str) -> AccountRuntime | None:
        if self._fixed is not None:
            return self._fixed[name]
        held = self._open.get(name)
        return held.runtime if held is not None else None


def total_concurrency(accounts: Collection[CheckedAccount]) -> int:
    """Calls all these accounts may make at once, each at its own cap."""
    return sum(account.settings.concurrency for account in accounts)


def _no_opener(name: str, checked: CheckedAccount) -> AccountRuntime:
    raise KeyError(name)
