"""Per-account limits inside one process: a concurrency cap and an aiolimiter rate limit.

The engine claims no more rows for an account than it has free slots, so leases are not burned
queueing; the rate limiter then spaces the calls it makes.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

from worker.durations import RateLimit


class AccountGate:
    def __init__(self, *, rate: RateLimit, concurrency: int) -> None:
        self.rate = rate
        self.concurrency = concurrency
        self.inflight = 0
        self._limiter = AsyncLimiter(max_rate=rate.count, time_period=rate.period)

    def free(self) -> int:
        """Slots for more rows to be claimed now."""
        return max(self.concurrency - self.inflight, 0)

    def take(self) -> None:
        self.inflight += 1

    def give(self) -> None:
        self.inflight -= 1

    async def permit(self) -> None:
        """Wait until the rate limit allows one more request."""
        await self._limiter.acquire()
