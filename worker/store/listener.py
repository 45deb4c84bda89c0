"""LISTEN for the outbox trigger's NOTIFY on a dedicated connection, reconnecting when it drops.

A notification only sets the engine's wake event; the engine's poll interval remains the
fallback, so a lost notification delays a row by at most one poll. The listening loop is
supervised (``chores.Supervised``): a crash is logged and the loop listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from worker.engine.chores import Restarts, Supervised
from worker.engine.flusher import outage_backoff
from worker.errors import StoreError
from worker.store import database

log = structlog.get_logger(__name__)

CHANNEL = "invoice_sync_outbox"

# The poll covers for a listener that is away, so it may wait a while between crashes.
LISTENER_RESTARTS = Restarts(first=0.5, cap=30.0)


class Listener:
    def __init__(self, dsn: str, wake: asyncio.Event) -> None:
        self._dsn = dsn
        self._wake = wake
        self._supervised = Supervised("listener", self._run, LISTENER_RESTARTS)

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
                log.warning("listener.disconnected", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def _listen_until_lost(self) -> None:
        conn = await database.connect(self._dsn)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
            # Rows may have arrived while we were not listening.
            self._wake.set()
            self._supervised.succeeded()
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    def _on_notify(self, *_args: Any) -> None:
        self._wake.set()
