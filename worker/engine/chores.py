"""Background tasks: ``start()``/``stop()`` services that outlive any one row (River's
``startstop.Service``), supervised so that none dies unseen.

``Supervised`` runs a long-lived coroutine (the flusher's loop, the LISTEN connection) and, if
it raises anything, logs ``chore.crashed`` with the exception's type and message and runs it
again after a capped exponential backoff that starts over once the task reports a success. A
task that may not run on in a broken state gives up after some crashes in a row and hands a
``BackgroundTaskError`` to its owner. ``PeriodicChore`` is a periodic action (lease rescue,
metrics) under that supervision: a ``StoreError`` is a database outage and is retried at the next
tick; anything else is a crash.

Messages are logged whole, never cut: the log redaction replaces configured secrets in the
full text, and a cut could leave a secret's prefix behind where redaction cannot see it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from worker.errors import BackgroundTaskError, StoreError

log = structlog.get_logger(__name__)

# A periodic chore that crashes waits twice its interval, doubling, but never longer than this
# (or its interval, when that is longer) before it runs again.
CHORE_BACKOFF_CAP = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Restarts:
    """When a crashed task runs again: ``first`` seconds after the first crash in a row, doubling
    up to ``cap``; given up after ``give_up_after`` crashes in a row (None: never)."""

    first: float
    cap: float
    give_up_after: int | None = None

    def delay(self, crashes: int) -> float:
        """Seconds to wait after the ``crashes``-th crash in a row (1, 2, ...)."""
        return min(self.first * 2.0 ** max(crashes - 1, 0), self.cap)

    def gives_up(self, crashes: int) -> bool:
        return self.give_up_after is not None and crashes >= self.give_up_after


class Supervised:
    """One named background task, restarted with backoff whenever it raises.

    ``body`` is run until it returns (its own decision to end) or the task is stopped. The body
    calls ``succeeded()`` when it did useful work, which resets the backoff. ``on_give_up`` is
    called once, with the error to report, when ``restarts`` gives up; the task then ends.
    """

    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        restarts: Restarts,
        *,
        on_give_up: Callable[[BackgroundTaskError], None] | None = None,
    ) -> None:
        self.name = name
        self.crashes = 0
        """Crashes since the last success: > 0 means the body is running again after one."""
        self._body = body
        self._restarts = restarts
        self._on_give_up = on_give_up
        self._finishing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._finishing.clear()
        self._task = asyncio.create_task(self._supervise(), name=f"chore:{self.name}")

    async def stop(self) -> None:
        """Cancel the task wherever it is."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def finish(self) -> None:
        """Wait for a body that was told to end (by its owner) to return; no restart after this,
        and a backoff wait in progress is cut short."""
        self._finishing.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def succeeded(self) -> None:
        """The body did its work: the next crash waits the shortest backoff again."""
        if self.crashes:
            log.info("chore.recovered", chore=self.name, after_crashes=self.crashes)
            self.crashes = 0

    async def _supervise(self) -> None:
        while not self._finishing.is_set():
            try:
                await self._body()
                return
            except Exception as exc:  # noqa: BLE001 - logged, then restarted or reported
                delay = self._crashed(exc)
            if delay is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finishing.wait(), timeout=delay)

    def _crashed(self, exc: Exception) -> float | None:
        """Log a crash; the seconds before the next run, or None once given up."""
        self.crashes += 1
        fields = {"chore": self.name, "error_type": type(exc).__name__, "error": str(exc)}
        if not self._restarts.gives_up(self.crashes):
            delay = self._restarts.delay(self.crashes)
            log.error("chore.crashed", **fields, crashes=self.crashes, restart_in=delay)
            return delay
        log.error("chore.gave_up", **fields, crashes=self.crashes)
        if self._on_give_up is not None:
            # The type only: this line reaches stderr past the log's redaction, and the message
            # (which could quote a secret) is in the chore.gave_up event, redacted.
            self._on_give_up(
                BackgroundTaskError(
                    f"the {self.name} crashed {self.crashes} times in a row (last: "
                    f"{type(exc).__name__}, see chore.gave_up in the log); stopping so that "
                    "the service manager restarts the worker"
                )
            )
        return None


class PeriodicChore:
    """``action`` every ``interval`` seconds (first at start when ``at_start``), supervised."""

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
        restarts = Restarts(first=2 * interval, cap=max(interval, CHORE_BACKOFF_CAP))
        self._supervised = Supervised(name, self._loop, restarts)

    def start(self) -> None:
        self._supervised.start()

    async def stop(self) -> None:
        await self._supervised.stop()

    async def _loop(self) -> None:
        # After a crash, the supervisor's backoff was the wait: run the action at once.
        run_now = self._at_start or self._supervised.crashes > 0
        while True:
            if not run_now:
                await asyncio.sleep(self.interval)
            run_now = False
            try:
                await self._action()
            except StoreError as exc:
                log.warning("chore.failed", chore=self.name, error=str(exc))
                continue
            self._supervised.succeeded()
