"""A counting semaphore for the calls at once (an account's ``concurrency``, the process's
``max_in_flight``), taken for every row.

``asyncio.Semaphore`` would do, at more cost than a row can spare: its ``acquire`` is a
coroutine even when a slot is free, and asks ``locked()``, which builds a generator over the
waiters, each time. Here a free slot is taken by a plain call (``try_acquire``), and a slot
given back goes straight to the longest waiter (first come, first served; no late comer takes
it in between).
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """``value`` slots; ``async with`` takes one for the block."""

    def __init__(self, value: int) -> None:
        if value < 0:
            raise ValueError("Slots value must be >= 0")
        self._free = value
        self._waiters: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        """Whether ``acquire`` would wait."""
        return not self._free or bool(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is waiting for one; whether it did."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one if none is free."""
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a slot, then cancelled before it ran: pass the slot on.
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the longest waiter still waiting, else to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot is the waiter's now
                return
        self._free += 1

    async def __aenter__(self) -> None:
        if not self.try_acquire():
            await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()
