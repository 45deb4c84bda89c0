"""Per-account limits: the concurrency cap, the rate limit and the provider breaker.

The rate limit holds for the whole deployment: each claim takes one token per row from the
account's bucket in PostgreSQL (``outbox_claim``, fed by ``claim_request``), so N replicas
together stay under it, rows are leased only when a token is there, and with the database gone
nothing is claimed at all (the limiter fails closed). Inside one process aiolimiter then spaces
the calls a batch of tokens allowed. The breaker stops an account whose provider keeps failing
(5xx, timeouts, resets) from being hammered: it opens, waits, then lets one call through
(half-open) and closes on its success.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from worker.durations import RateLimit
from worker.engine.depth import LeaseDepth
from worker.engine.slots import Slots
from worker.outcome import Health
from worker.store.outbox import ClaimRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerPolicy:
    failures: int = 10
    """Consecutive failed calls (5xx, timeouts, resets) that open the breaker."""
    cooldown: float = 10.0
    """How long it stays open the first time; doubled each time a half-open call fails."""
    max_cooldown: float = 60.0


class Breaker:
    """Closed → open (after ``failures`` in a row) → half-open (one call) → closed or open."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._cooldown = policy.cooldown

    @property
    def half_open(self) -> bool:
        return self._open_until is not None and self._clock() >= self._open_until

    def blocked_for(self) -> float:
        """Seconds until the breaker lets a call through (0 when it does now)."""
        if self._open_until is None:
            return 0.0
        return max(self._open_until - self._clock(), 0.0)

    def record(self, health: Health | None) -> float | None:
        """Feed one call's result; returns the open period when this call opened the breaker."""
        if health is None:
            return None
        if health == "up":
            self._failures = 0
            self._open_until = None
            self._cooldown = self._policy.cooldown
            return None
        self._failures += 1
        if self.half_open:
            self._cooldown = min(self._cooldown * 2, self._policy.max_cooldown)
        elif self._open_until is not None or self._failures < self._policy.failures:
            return None  # still open (a call that started before it opened), or below threshold
        self._open_until = self._clock() + self._cooldown
        return self._cooldown


def share_claim(rooms: Mapping[str, int], limit: int, *, turn: int = 0) -> dict[str, int]:
    """How many rows each account may claim when one claim takes at most ``limit`` rows
    (``[worker] batch_size``) whatever their room: equal shares, and what an account has no
    room for goes to the others. Rows left after the equal shares (fewer than accounts) go
    round the accounts starting at the ``turn``-th, so a small limit favours none of them."""
    if sum(rooms.values()) <= limit:
        return dict(rooms)
    names = sorted(rooms)
    start = turn % len(names)
    names = names[start:] + names[:start]
    given = dict.fromkeys(names, 0)
    left = limit
    open_ = [name for name in names if rooms[name] > 0]
    while left and open_:
        share = left // len(open_)
        if share == 0:
            for name in open_[:left]:
                given[name] += 1
            break
        for name in open_:
            taken = min(share, rooms[name] - given[name])
            given[name] += taken
            left -= taken
        open_ = [name for name in open_ if given[name] < rooms[name]]
    return {name: rows for name, rows in given.items() if rows}


def leased_room(capacity: int, held: int) -> int:
    """Rows to lease now when ``held`` of ``capacity`` are leased: none until a quarter of the
    capacity is free, so claims come in batches rather than one row per freed slot."""
    free = max(capacity - held, 0)
    return free if free >= max(1, capacity // 4) else 0


def claim_request(rows: int, rate: RateLimit, burst: float | None) -> ClaimRequest:
    """``rows`` of an account whose deployment-wide bucket refills at ``rate`` and holds
    ``burst`` tokens (default: ``default_burst``)."""
    return ClaimRequest(
        rows=rows, rate=rate.per_second, burst=float(burst) if burst else default_burst(rate)
    )


def default_burst(rate: RateLimit) -> float:
    """Half of one second's requests, never less than one.

    A provider enforcing "R per second" usually keeps a bucket of R. Ours starts counting
    refills when a token is taken, the provider's only when the request arrives, so right after
    an idle spell (both buckets full) ours runs ahead by R times that delay; the half held back
    absorbs up to 500 ms of it (a loaded machine, rows waiting for a call slot). Steady-state
    throughput does not depend on the burst.
    """
    return max(1.0, float(math.floor(rate.per_second * 0.5)))


class AccountGate:
    def __init__(
        self,
        *,
        rate: RateLimit,
        concurrency: int,
        burst: float | None = None,
        breaker: Breaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.concurrency = concurrency
        self.burst = float(burst) if burst is not None else default_burst(rate)
        self.breaker = breaker
        # Rows held (claimed, not finished): at least twice the calls allowed at once, so the
        # next calls' rows are already leased when a call ends, and deeper for an account that
        # finishes rows faster than a claim comes back (``worker.engine.depth``). A row waits
        # here about one call's time, or two claims' (longer when the rate limit spaces calls);
        # one whose lease would end first is given back unsent.
        self.depth = LeaseDepth(concurrency, clock)
        self.inflight = 0
        self._slot = CallSlot(
            Slots(concurrency),
            AsyncLimiter(max_rate=rate.count, time_period=rate.period),
        )

    def free(self) -> int:
        """Rows to claim now: none until a quarter of the lease depth is free (claims come in
        batches), one at most while the breaker half-opens."""
        depth = cap = self.depth.rows
        if self.breaker is not None:
            if self.breaker.blocked_for() > 0:
                return 0
            if self.breaker.half_open:
                cap = 1
        free = max(cap - self.inflight, 0)
        return free if free >= min(cap, max(1, depth // 4)) else 0

    def claim_request(self, rows: int) -> ClaimRequest:
        return claim_request(rows, self.rate, self.burst)

    def take(self) -> None:
        if not self.inflight:
            self.depth.busy()
        self.inflight += 1

    def give(self) -> None:
        self.inflight -= 1
        self.depth.finished(idle=not self.inflight)

    def call_slot(self) -> CallSlot:
        """One of the account's ``concurrency`` calls, once the in-process rate limit allows it."""
        return self._slot


class CallSlot:
    """``async with``: one of an account's calls at once, taken once the in-process rate limit
    allows it. A class rather than an ``asynccontextmanager``: it is entered for every row,
    and the generator behind one cost a few microseconds each time. Holds no state of its
    own (the semaphore does), so one serves all the account's calls."""

    def __init__(self, calls: Slots, limiter: AsyncLimiter) -> None:
        self._calls = calls
        self._limiter = limiter

    async def __aenter__(self) -> None:
        if not self._calls.try_acquire():
            await self._calls.acquire()
        try:
            await self._limiter.acquire()
        except BaseException:
            self._calls.release()  # cancelled while waiting for the rate limit
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._calls.release()
