"""Background chores share one shape: ``start()``/``stop()`` around a periodic action (River's
``startstop.Service``). A chore that fails logs and tries again next tick; it never kills the
worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from worker.errors import StoreError

log = structlog.get_logger(__name__)


class PeriodicChore:
    def __init__(
        self,
        name: str,
        interval: float,
        action: Callable[[], Awaitable[None]],
        *,
        at_start: bool = False,
    ) -> None:
        self.name = name
        self.interval = interval
        self._action = action
        self._at_start = at_start
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"chore:{self.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _loop(self) -> None:
        first = True
        while True:
            if not (first and self._at_start):
                await asyncio.sleep(self.interval)
            first = False
            try:
                await self._action()
            except StoreError as exc:
                log.warning("chore.failed", chore=self.name, error=str(exc))
