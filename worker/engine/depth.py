"""How many rows an account leases ahead: enough that the next claim's round trip is covered.

An account's calls run from rows already leased; the loop claims again once a quarter of the
account's depth is free, and that claim's rows arrive one round trip later. When the rows left
run out before then, the account's calls stand idle until the answer. With a provider that
answers at once that wait was most of the time (an account of concurrency 16 leasing 32 rows
ran them in 2.6 ms, then waited 2.8 ms for the next claim), so one account finished its depth
per round trip and run, some 6,000 rows a second, whatever the provider could take.

So the depth follows the account, from two figures smoothed over its recent claims: the rate it
finishes rows at while it has rows (its idle spells waiting for a claim left out: counted in,
a shallow depth would only ever measure the rate it allows, and confirm itself) and how long a
claim takes. It leases what it finishes in two claims' time (``lease_depth``): rows to run
while a claim is out, and as many again for that claim to refill, so claims go back to back,
each fetching what the previous one's round trip freed. Never less than twice the concurrency,
what every account leased before (the next calls' rows are leased when a call ends): a slow
provider (50 ms calls against a 3 ms claim) stays there, and its rows never wait leased longer
than they used to. Never more than eight times the concurrency: a claim slowed by a busy
database (a second, once) must not make an account lease thousands of rows that then wait. The
rows an account holds still wait about two claims at most, well inside the send margin of their
lease, and the rate limit is untouched: every row still takes its token at the claim, and the
calls are still spaced. The process's own bound holds beside it (twice ``max_in_flight`` rows,
all accounts together), and a claim still takes at most ``batch_size`` rows: a deep account is
refilled by several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Weight of the newest sample in the smoothed rate and claim time: a few claims (a few
# milliseconds at speed) follow a change of pace, and one odd claim does not swing the depth.
SMOOTHING = 0.25
# The depth's bounds, in multiples of the account's concurrency.
FLOOR_CALLS = 2
CAP_CALLS = 8


def lease_depth(rate: float, claim_seconds: float, *, floor: int, cap: int) -> int:
    """Rows to lease ahead for an account finishing ``rate`` rows a second while it has rows,
    when a claim takes ``claim_seconds``: what it finishes in two claims, within
    ``floor``-``cap``."""
    return min(max(math.ceil(2 * rate * claim_seconds), floor), cap)


class LeaseDepth:
    """One account's lease depth (``rows``), kept up to date from its rows and its claims.

    The gate says when its first row is leased after none were (``busy``) and when each row
    finishes (``finished``); the loop says how long each claim that served the account took
    (``claimed``), which is when the depth is worked out again."""

    def __init__(self, concurrency: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.floor = FLOOR_CALLS * concurrency
        self.cap = CAP_CALLS * concurrency
        self.rows = self.floor
        self._clock = clock
        self._rate: float | None = None
        self._claim_seconds: float | None = None
        # Since the last sample: rows finished, and seconds with rows held (closed spells, plus
        # the open one since ``_busy_since``).
        self._finished = 0
        self._busy = 0.0
        self._busy_since: float | None = None

    def busy(self) -> None:
        """The account holds a row again after holding none."""
        self._busy_since = self._clock()

    def finished(self, *, idle: bool) -> None:
        """A row finished; ``idle``: it was the last one the account held."""
        self._finished += 1
        if idle and self._busy_since is not None:
            self._busy += self._clock() - self._busy_since
            self._busy_since = None

    def claimed(self, seconds: float) -> None:
        """A claim that served this account took ``seconds``: take a rate sample (once a
        quarter of the floor has finished since the last, so one row's timing does not count
        for a claim's), and set the depth."""
        self._claim_seconds = _smooth(self._claim_seconds, seconds)
        if self._finished >= max(1, self.floor // 4):
            now = self._clock()
            busy = self._busy
            if self._busy_since is not None:
                busy += now - self._busy_since
                self._busy_since = now
            if busy > 0:
                self._rate = _smooth(self._rate, self._finished / busy)
            self._finished, self._busy = 0, 0.0
        if self._rate is not None:
            self.rows = lease_depth(self._rate, self._claim_seconds, floor=self.floor, cap=self.cap)


def _smooth(average: float | None, sample: float) -> float:
    return sample if average is None else average + SMOOTHING * (sample - average)
