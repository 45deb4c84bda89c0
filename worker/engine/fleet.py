"""The accounts this process may work, and the runtimes of those that have work right now.

Every account is checked at start (provider, options, token source), which opens nothing. Its
runtime (adapter, HTTP session, caches, limits) is made when a claim first leases one of its
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
from collections.abc import Callable, Iterable, KeysView, Mapping

import structlog

from worker.engine.limits import claim_request
from worker.engine.runtimes import AccountRuntime, CheckedAccount
from worker.store.outbox import ClaimRequest

log = structlog.get_logger(__name__)

Opener = Callable[[str, CheckedAccount], AccountRuntime]


class Fleet:
    """Checked accounts by name, and the open runtimes among them (LRU order)."""

    def __init__(
        self,
        accounts: Mapping[str, CheckedAccount],
        *,
        opener: Opener,
        idle_timeout: float,
        max_open: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = dict(accounts)
        self._opener = opener
        self._idle_timeout = idle_timeout
        self._max_open = max_open
        self._clock = clock
        self._open: OrderedDict[str, tuple[AccountRuntime, float]] = OrderedDict()
        self._fixed: dict[str, AccountRuntime] | None = None

    @classmethod
    def of(cls, runtimes: Mapping[str, AccountRuntime]) -> Fleet:
        """Runtimes built beforehand (tests, embedded use): always open, closed at the end."""
        fleet = cls({}, opener=_no_opener, idle_timeout=float("inf"), max_open=len(runtimes))
        fleet._fixed = dict(runtimes)
        return fleet

    def names(self) -> KeysView[str]:
        return (self._fixed if self._fixed is not None else self._accounts).keys()

    def checked(self) -> dict[str, CheckedAccount]:
        """The accounts this fleet may work, as checked (a copy)."""
        return dict(self._accounts)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __len__(self) -> int:
        return len(self.names())

    def open_count(self) -> int:
        return len(self._fixed) if self._fixed is not None else len(self._open)

    def provider_name(self, name: str) -> str:
        if self._fixed is not None:
            return self._fixed[name].provider_name
        return self._accounts[name].spec.name

    def room(self, name: str) -> int:
        """Rows ``name`` may be given now: its gate's room when open, a new gate's when not."""
        runtime = self._peek(name)
        if runtime is not None:
            return runtime.gate.free()
        return 2 * self._accounts[name].settings.concurrency

    def claim_request(self, name: str, rows: int) -> ClaimRequest:
        """``rows`` of ``name`` with its deployment-wide bucket, without opening it."""
        runtime = self._peek(name)
        if runtime is not None:
            return runtime.gate.claim_request(rows)
        account = self._accounts[name].settings
        return claim_request(rows, account.rate_limit, account.rate_burst)

    def total_concurrency(self) -> int:
        """Calls all accounts may make at once, each at its own cap."""
        if self._fixed is not None:
            return sum(rt.gate.concurrency for rt in self._fixed.values())
        return sum(a.settings.concurrency for a in self._accounts.values())

    def runtime(self, name: str) -> AccountRuntime:
        """The account's runtime, opened now if it is not (``ConfigError`` if it cannot be:
        a token file gone since start, say); marks it used."""
        if self._fixed is not None:
            return self._fixed[name]
        found = self._open.get(name)
        runtime = found[0] if found is not None else self._opener(name, self._accounts[name])
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

    def replace(self, accounts: Mapping[str, CheckedAccount]) -> list[AccountRuntime]:
        """Take a new set of accounts (a reload): runtimes of removed or changed accounts leave
        service (returned for closing once their rows in flight finish, which hold their own
        reference); unchanged ones stay open."""
        retired = []
        for name, (runtime, _used) in list(self._open.items()):
            new = accounts.get(name)
            if new is None or new != self._accounts.get(name):
                del self._open[name]
                retired.append(runtime)
        # In place: ``names()`` hands out a live view (the metrics refresher holds one).
        self._accounts.clear()
        self._accounts.update(accounts)
        return retired

    def open_runtimes(self) -> Iterable[AccountRuntime]:
        if self._fixed is not None:
            return list(self._fixed.values())
        return [runtime for runtime, _used in self._open.values()]

    def _peek(self, name: str) -> AccountRuntime | None:
        if self._fixed is not None:
            return self._fixed[name]
        found = self._open.get(name)
        return found[0] if found is not None else None


def _no_opener(name: str, checked: CheckedAccount) -> AccountRuntime:
    raise KeyError(name)
