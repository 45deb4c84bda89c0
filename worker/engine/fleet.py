"""The accounts this process may work, and the runtimes of those that have work right now.

A config file's account is checked at start (provider, options, token source), which opens
nothing. A database-held account is only listed (``Listed``: its provider, limits and the row's
version, what the claim needs): its secret is opened and its options checked when a claim is
first about to lease one of its rows (``prepare``, one query per claim for the claim's new
accounts, through the ``Loader``). One found unusable then (a secret no key opens, options its
provider refuses) is named once (``account.invalid``) and left out, its rows pending, until its
row changes. Its runtime (adapter, HTTP session, caches, limits) is made when a claim first leases one of its
rows, and closed once it has had nothing in flight for ``idle_timeout``, or sooner when more
than ``max_open`` are open (the least recently used idle ones first). So memory follows the
accounts that have work, not the accounts configured: ten thousand merchants with an invoice
each cost what a few hundred do.

A closed runtime's in-process state goes with it: the aiolimiter spacing (the deployment-wide
token bucket is in the database and stays) and the breaker's count of recent failures.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import NamedTuple, Self

import structlog

from worker.durations import RateLimit
from worker.engine.depth import FLOOR_CALLS
from worker.engine.limits import claim_request
from worker.engine.runtimes import AccountRuntime, CheckedAccount
from worker.errors import ConfigError
from worker.store.outbox import ClaimRequest

log = structlog.get_logger(__name__)


class Profile(NamedTuple):
    """What the claim needs of an account: shared by every listed account that has it."""

    provider: str
    rate: RateLimit
    burst: float | None
    concurrency: int


# Every profile listed so far, and its number: a platform's accounts share a few.
_PROFILES: list[Profile] = []
_PROFILE_NUMBERS: dict[Profile, int] = {}
_VERSION_BITS = 64
_VERSION_MASK = (1 << _VERSION_BITS) - 1


class Listed(int):
    """A database-held account as kept until it has work: its profile (``Profile``: what the
    claim needs) and its row's ``version``, which changes with any column of the row (a reload
    that sees another one replaces the account's runtime). One int (the profile's number above
    the version's 64 bits), because a hundred thousand of these must cost little: 64 bytes
    each, where a tuple and its version were 128. Equal when profile and version are."""

    __slots__ = ()

    def __new__(
        cls, provider: str, rate: RateLimit, burst: float | None, concurrency: int, version: int
    ) -> Listed:
        profile = Profile(provider, rate, burst, concurrency)
        number = _PROFILE_NUMBERS.get(profile)
        if number is None:
            number = _PROFILE_NUMBERS[profile] = len(_PROFILES)
            _PROFILES.append(profile)
        return super().__new__(cls, number << _VERSION_BITS | version & _VERSION_MASK)

    @property
    def profile(self) -> Profile:
        return _PROFILES[self >> _VERSION_BITS]

    @property
    def version(self) -> int:
        return self & _VERSION_MASK

    @property
    def provider(self) -> str:
        return self.profile.provider

    @property
    def rate(self) -> RateLimit:
        return self.profile.rate

    @property
    def burst(self) -> float | None:
        return self.profile.burst

    @property
    def concurrency(self) -> int:
        return self.profile.concurrency

    def __repr__(self) -> str:
        return f"Listed({self.profile!r}, version={self.version})"


Entry = CheckedAccount | Listed
Opener = Callable[[str, CheckedAccount], AccountRuntime]
Loader = Callable[[list[str]], Awaitable[dict[str, CheckedAccount | str]]]
"""Opens and checks the named database accounts: each one's ``CheckedAccount``, or one line
saying why it cannot run; a name left out is gone or disabled since the last reload."""


class Fleet:
    """Accounts by name (checked, or listed), and the open runtimes among them (LRU order)."""

    def __init__(
        self,
        accounts: Mapping[str, Entry],
        *,
        opener: Opener,
        idle_timeout: float,
        max_open: int,
        loader: Loader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Held, not copied, and never changed here (a reload hands over a new one): at a
        # platform's size a copy is megabytes, and the reloader keeps this same one.
        self._accounts = accounts
        self._opener = opener
        self._loader = loader
        # Listed accounts ``prepare`` opened for the claim under way.
        self._ready: dict[str, CheckedAccount] = {}
        # Listed accounts found unusable, left out (of ``names()`` too) until their row
        # changes: the version they were found at, and why.
        self._invalid: dict[str, tuple[int, str]] = {}
        self._names = _Usable(self)
        self._idle_timeout = idle_timeout
        self._max_open = max_open
        self._clock = clock
        self._open: OrderedDict[str, tuple[AccountRuntime, float]] = OrderedDict()
        self._fixed: dict[str, AccountRuntime] | None = None

    @classmethod
    def of(cls, runtimes: Mapping[str, AccountRuntime]) -> Self:
        """Runtimes built beforehand (tests, embedded use): always open, closed at the end."""
        fleet = cls({}, opener=_no_opener, idle_timeout=float("inf"), max_open=len(runtimes))
        fleet._fixed = dict(runtimes)
        return fleet

    def names(self) -> AbstractSet[str]:
        """The accounts this fleet may work: a live view (the metrics refresher holds one)."""
        return self._fixed.keys() if self._fixed is not None else self._names

    def checked(self) -> dict[str, Entry]:
        """The accounts this fleet may work, as checked or listed (a copy)."""
        return {name: self._accounts[name] for name in self._names}

    def invalid_count(self) -> int:
        """Listed accounts left out because opening them failed (until their row changes)."""
        return len(self._invalid)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __len__(self) -> int:
        return len(self.names())

    def open_count(self) -> int:
        return len(self._fixed) if self._fixed is not None else len(self._open)

    def provider_name(self, name: str) -> str:
        if self._fixed is not None:
            return self._fixed[name].provider_name
        entry = self._accounts[name]
        return entry.provider if isinstance(entry, Listed) else entry.spec.name

    def room(self, name: str) -> int:
        """Rows ``name`` may be given now: its gate's room when open, a new gate's when not."""
        runtime = self._peek(name)
        if runtime is not None:
            return runtime.gate.free()
        return FLOOR_CALLS * concurrency_of(self._accounts[name])

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
        entry = self._accounts[name]
        if isinstance(entry, Listed):
            return claim_request(rows, entry.rate, entry.burst)
        return claim_request(rows, entry.settings.rate_limit, entry.settings.rate_burst)

    def total_concurrency(self) -> int:
        """Calls all accounts may make at once, each at its own cap."""
        if self._fixed is not None:
            return sum(rt.gate.concurrency for rt in self._fixed.values())
        return total_concurrency(self._accounts.values())

    def unopened(self, name: str) -> bool:
        """Whether ``name`` is a listed database account with no runtime yet: a claim must
        ``prepare`` it before leasing its rows."""
        return (
            self._fixed is None
            and name not in self._open
            and isinstance(self._accounts.get(name), Listed)
        )

    async def prepare(self, shares: dict[str, int]) -> dict[str, int]:
        """Open the listed accounts among ``shares`` (rows to claim by account) that have no
        runtime, all in one go (the ``Loader``: one query), before a claim leases their rows;
        returns ``shares`` without those not to claim now: found unusable (named once, left
        out until their row changes) or gone since the last reload (the next one takes it in)."""
        self._ready.clear()
        wanted = [name for name in shares if self.unopened(name) and name not in self._invalid]
        if not wanted:
            return shares
        if self._loader is None:
            raise ConfigError("database accounts listed without a loader to open them")
        found = await self._loader(wanted)
        skip = set()
        for name in wanted:
            result = found.get(name)
            if isinstance(result, CheckedAccount):
                self._ready[name] = result
                continue
            skip.add(name)
            entry = self._accounts.get(name)
            if result is None or not isinstance(entry, Listed):
                continue
            # Named once: it stays out, so it is not tried again, until its row changes.
            log.warning("account.invalid", account=name, error=result)
            self._invalid[name] = (entry.version, result)
        return {name: rows for name, rows in shares.items() if name not in skip}

    def runtime(self, name: str) -> AccountRuntime:
        """The account's runtime, opened now if it is not (``ConfigError`` if it cannot be:
        a token file gone since start, a listed account ``prepare`` did not open); marks it
        used."""
        if self._fixed is not None:
            return self._fixed[name]
        found = self._open.get(name)
        runtime = found[0] if found is not None else self._opener(name, self._checked(name))
        if found is None:
            log.debug("account.opened", account=name)
        self._open[name] = (runtime, self._clock())
        self._open.move_to_end(name)
        return runtime

    def touch(self, name: str) -> None:
        """The account just finished a row: its idle time counts from now."""
        found = self._open.get(name)
        if found is not None:
            self._open[name] = (found[0], self._clock())
            self._open.move_to_end(name)

    def retire(self) -> list[AccountRuntime]:
        """Take out of service the runtimes idle past the timeout, and the least recently
        used idle ones beyond ``max_open``; returns them for the caller to close (``aclose``
        awaits). One with rows in flight is never taken."""
        if self._fixed is not None or not self._open:
            return []
        horizon = self._clock() - self._idle_timeout
        retired: list[AccountRuntime] = []
        for name, (runtime, used) in list(self._open.items()):
            over = len(self._open) > self._max_open
            if used > horizon and not over:
                break  # LRU order: the rest were used later
            if runtime.gate.inflight:
                continue
            del self._open[name]
            retired.append(runtime)
        return retired

    def replace(self, accounts: Mapping[str, Entry]) -> list[AccountRuntime]:
        """Take a new set of accounts (a reload): runtimes of removed or changed accounts leave
        service (returned for closing once their rows in flight finish, which hold their own
        reference); unchanged ones stay open, and unusable ones whose row did not change stay
        out."""
        retired = []
        for name, (runtime, _used) in list(self._open.items()):
            new = accounts.get(name)
            if new is None or new != self._accounts.get(name):
                del self._open[name]
                retired.append(runtime)
        self._ready.clear()
        self._accounts = accounts
        for name, (version, _error) in list(self._invalid.items()):
            new = accounts.get(name)
            # Removed, or changed: tried again at its next claim, named if still wrong.
            if not isinstance(new, Listed) or new.version != version:
                del self._invalid[name]
        return retired

    def open_runtimes(self) -> Iterable[AccountRuntime]:
        if self._fixed is not None:
            return list(self._fixed.values())
        return [runtime for runtime, _used in self._open.values()]

    def _checked(self, name: str) -> CheckedAccount:
        entry = self._accounts[name]
        if isinstance(entry, CheckedAccount):
            return entry
        ready = self._ready.pop(name, None)
        if ready is None:
            raise ConfigError(f"account {name}: not opened before its rows were claimed")
        return ready

    def _peek(self, name: str) -> AccountRuntime | None:
        if self._fixed is not None:
            return self._fixed[name]
        found = self._open.get(name)
        return found[0] if found is not None else None


class _Usable(AbstractSet[str]):
    """A fleet's accounts less those found unusable, live: it follows reloads and findings."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def __contains__(self, name: object) -> bool:
        fleet = self._fleet
        return name in fleet._accounts and name not in fleet._invalid

    def __iter__(self) -> Iterator[str]:
        fleet = self._fleet
        return (name for name in fleet._accounts if name not in fleet._invalid)

    def __len__(self) -> int:
        # Every unusable one is among the accounts: replace() forgets those that left.
        return len(self._fleet._accounts) - len(self._fleet._invalid)


def concurrency_of(entry: Entry) -> int:
    return entry.concurrency if isinstance(entry, Listed) else entry.settings.concurrency


def total_concurrency(entries: Collection[Entry]) -> int:
    """Calls all these accounts may make at once, each at its own cap."""
    return sum(concurrency_of(entry) for entry in entries)


def _no_opener(name: str, checked: CheckedAccount) -> AccountRuntime:
    raise KeyError(name)
