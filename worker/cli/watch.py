"""``invoice-sync status --watch``: read cheap counts on an interval and show the progress.

Each refresh runs three small queries (``status_watch_remaining``, ``status_watch_finished``,
``account_state_list``): the unfinished rows through the outbox's partial indexes, and the
rows finished since the watch began through the ``synced_at`` / ``dead_at`` indexes, so a
refresh costs what is left to do and what was done meanwhile, never the table's history.
On a terminal the view redraws in place (``rich.live.Live``); elsewhere, or where rich is not
installed, it prints one line per refresh, which is what logs and tests read. rich is imported
only once a watch starts: the other commands load this module and need none of it.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

import asyncpg

from worker.cli.progress import RateWindow, Readout, build_snapshot, render_line, render_snapshot
from worker.store import database
from worker.store.accounts import AccountStore
from worker.store.queries import queries

if TYPE_CHECKING:
    from rich.live import Live

# The rate is averaged over this many seconds: long enough to smooth one flush's burst,
# short enough to follow a provider slowing down.
RATE_WINDOW = 10.0


class WatchStore:
    """The reads ``status --watch`` makes, one method per named query."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def status_watch_start(self) -> datetime:
        """The database's clock, so finished rows are counted by the same clock that stamped them."""
        started: datetime = await database.run(
            lambda: self._pool.fetchval(self._q["status_watch_start"])
        )
        return started

    async def status_watch_remaining(
        self, conn: asyncpg.Connection
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(pending, running) row counts by account."""
        by_state: dict[str, dict[str, int]] = {"pending": {}, "running": {}}
        for row in await conn.fetch(self._q["status_watch_remaining"]):
            by_state[row["state"]][row["account"]] = row["count"]
        return by_state["pending"], by_state["running"]

    async def status_watch_finished(
        self, conn: asyncpg.Connection, since: datetime
    ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """(synced by account, dead-lettered by account and reason) since ``since``."""
        synced: dict[str, int] = {}
        dead: dict[str, dict[str, int]] = {}
        for row in await conn.fetch(self._q["status_watch_finished"], since):
            if row["kind"] == "synced":
                synced[row["account"]] = row["count"]
            else:
                dead.setdefault(row["account"], {})[row["reason"]] = row["count"]
        return synced, dead

    async def read(self, since: datetime) -> Readout:
        """Everything one refresh shows.

        The two counts share one snapshot (REPEATABLE READ): read apart, a row finishing between
        them would be counted both as unfinished and as finished, and the total would wobble.
        """

        async def counts() -> tuple[tuple[dict[str, int], dict[str, int]],
                                    tuple[dict[str, int], dict[str, dict[str, int]]]]:  # fmt: skip
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return (
                    await self.status_watch_remaining(conn),
                    await self.status_watch_finished(conn, since),
                )

        (pending, running), (synced, dead) = await database.run(counts)
        states = await AccountStore(self._pool).account_state_list()
        paused = [s for s in states if s.paused]
        return Readout(
            pending=pending, running=running, synced=synced, dead=dead,
            paused={s.account: s.pause_reason or "paused" for s in paused},
            pause_errors={s.account: s.pause_error for s in paused if s.pause_error},
        )  # fmt: skip


async def watch(pool: asyncpg.Pool, *, interval: float, until_drained: bool, out: TextIO) -> int:
    """Refresh every ``interval`` seconds until interrupted, or with ``until_drained`` until
    nothing is pending or in flight outside paused accounts; then 0."""
    store = WatchStore(pool)
    since = await store.status_watch_start()
    window = RateWindow(RATE_WINDOW)
    began = time.monotonic()
    live = _live_view(out)
    with live or nullcontext():
        while True:
            readout = await store.read(since)
            now = time.monotonic()
            snapshot = build_snapshot(
                readout, elapsed=now - began, rate=window.add(now, readout.finished)
            )
            if live is not None:
                live.update(render_snapshot(snapshot), refresh=True)
            else:
                out.write(render_line(snapshot) + "\n")
                out.flush()
            if until_drained and snapshot.drained:
                return 0
            await asyncio.sleep(interval)


def _live_view(out: TextIO) -> Live | None:
    """rich's view redrawn in place when ``out`` is a terminal; None (one line per refresh)
    elsewhere, or when rich is not installed."""
    try:
        from rich.console import Console  # noqa: PLC0415
        from rich.live import Live  # noqa: PLC0415
    except ModuleNotFoundError:
        return None
    console = Console(file=out)
    return Live(console=console, auto_refresh=False) if console.is_terminal else None
