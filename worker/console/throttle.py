"""Slowing down guesses at the admin login, in this process's memory.

Each client address may fail ``FREE_FAILURES`` times in a row; each failure after that locks
the address out for twice as long as the one before (1 s, 2 s, 4 s, ... at most
``MAX_LOCKOUT``), and a successful login clears its count. All addresses together may fail at
most ``GLOBAL_FAILURES`` times a minute (a guesser with many addresses); past that, every login
waits until the oldest failure of the minute is a minute old. While an address is limited its
logins are answered 429 without comparing the token, so a guess made then learns nothing, the
right token included.

The counts live in memory: a restart forgets them, and each console process counts its own.
They stay small: only a failure adds an entry, failures are at most ``GLOBAL_FAILURES`` a
minute, and an address is forgotten ``FORGET_AFTER`` after its last failure (longer than any
lockout, so a locked address is never forgotten early).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
MAX_LOCKOUT = 300.0
GLOBAL_FAILURES = 30
WINDOW = 60.0
FORGET_AFTER = 900.0


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """Failed logins per client address and in all, and how long a login must wait."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        # Least recently failed first, so forgetting stops at the first recent one.
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()
        self._recent: deque[float] = deque()

    def wait(self, address: str) -> float:
        """Seconds until ``address`` may try to log in (0: now)."""
        now = self._now()
        self._forget(now)
        entry = self._addresses.get(address)
        waits = [0.0, entry.locked_until - now if entry else 0.0]
        if len(self._recent) >= GLOBAL_FAILURES:
            waits.append(self._recent[0] + WINDOW - now)
        return max(waits)

    def failed(self, address: str) -> int:
        """Count a failed login from ``address``; how many it has failed in a row."""
        now = self._now()
        entry = self._addresses.pop(address, None) or _Failures()
        entry.count += 1
        entry.last = now
        beyond = entry.count - FREE_FAILURES
        if beyond > 0:
            entry.locked_until = now + min(2.0 ** min(beyond - 1, 30), MAX_LOCKOUT)
        self._addresses[address] = entry
        self._recent.append(now)
        return entry.count

    def succeeded(self, address: str) -> None:
        self._addresses.pop(address, None)

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - WINDOW:
            self._recent.popleft()
        while self._addresses:
            address, entry = next(iter(self._addresses.items()))
            if entry.last > now - FORGET_AFTER:
                break
            del self._addresses[address]
