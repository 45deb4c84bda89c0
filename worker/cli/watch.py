"""``invoice-sync status --watch``: read cheap counts on an interval and show the progress.

Each refresh asks the store (``worker.store.stats.WatchStore``) for three small queries (``status_watch_remaining``, ``status_watch_finished``,
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
from typing import TYPE_CHECKING, TextIO

from worker.cli.progress import RateWindow, build_snapshot, render_line, render_snapshot
from worker.store.database import Pool
from worker.store.stats import WatchStore

if TYPE_CHECKING:
    from rich.live import Live

# The rate is averaged over this many seconds: long enough to smooth one flush's burst,
# short enough to follow a provider slowing down.
RATE_WINDOW = 10.0


async def watch(pool: Pool, *, interval: float, until_drained: bool, out: TextIO) -> int:
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
