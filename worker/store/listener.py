"""LISTEN for a trigger's NOTIFY (the outbox's, or another ``channel``) on a dedicated connection,
until the connection is lost.

One call is one connection: reconnecting, and supervising the loop that reconnects, is the
engine's business (``worker.engine.listener``), which wraps this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from worker.store import database

CHANNEL = "invoice_sync_outbox"


async def listen_until_lost(
    dsn: str,
    *,
    on_notify: Callable[[], None],
    on_listening: Callable[[], None],
    channel: str = CHANNEL,
) -> None:
    """Connect, LISTEN on ``channel``, call ``on_listening`` once listening, then ``on_notify`` for each
    notification; return when the connection is lost. ``StoreError`` when it cannot connect."""
    conn = await database.connect(dsn)
    lost = asyncio.Event()

    def notified(*_args: Any) -> None:
        on_notify()

    try:
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(channel, notified)
        on_listening()
        await lost.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), timeout=2)
