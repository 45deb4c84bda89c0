"""Wakes the engine when the outbox trigger sends a NOTIFY, reconnecting when the connection drops.
(The account reloader uses the same class on the account table's channel.)

A notification only sets the engine's wake event; the engine's poll interval remains the
fallback, so a lost notification delays a row by at most one poll. The listening loop is
supervised (``chores.Supervised``): a crash is logged and the loop listens again. The LISTEN
connection itself is the store's (``worker.store.listener``).
"""

from __future__ import annotations

import asyncio

import structlog

from worker.engine.chores import Restarts, Supervised
from worker.engine.flusher import outage_backoff
from worker.errors import StoreError
from worker.store.listener import CHANNEL, listen_until_lost

log = structlog.get_logger(__name__)

# The poll covers for a listener that is away, so it may wait a while between crashes.
LISTENER_RESTARTS = Restarts(first=0.5, cap=30.0)


class Listener:
    """Sets ``wake`` on each notification, and once each time it starts listening."""

    def __init__(
        self, dsn: str, wake: asyncio.Event, *, channel: str = CHANNEL, name: str = "listener"
    ) -> None:
        self._dsn = dsn
        self._wake = wake
        self._channel = channel
        self._name = name
        self._supervised = Supervised(name, self._run, LISTENER_RESTARTS)

    def start(self) -> None:
        self._supervised.start()

    async def stop(self) -> None:
        await self._supervised.stop()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_until_lost()
                failures = 0
            except StoreError as exc:
                failures += 1
                delay = outage_backoff(failures)
                log.warning(
                    "listener.disconnected", listener=self._name, error=str(exc), retry_in=delay
                )
                await asyncio.sleep(delay)

    async def _listen_until_lost(self) -> None:
        await listen_until_lost(
            self._dsn,
            on_notify=self._wake.set,
            on_listening=self._listening,
            channel=self._channel,
        )

    def _listening(self) -> None:
        # Rows may have arrived while we were not listening.
        self._wake.set()
        self._supervised.succeeded()
