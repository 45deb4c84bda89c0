"""The demo and a configured database (the one ``--config``, ``INVOICE_SYNC_CONFIG`` or
``INVOICE_SYNC_DATABASE_URL[_FILE]`` names: in the Docker image and the pod, production's).

Without ``--use-configured-database`` the demo leaves that database alone and says so. With it,
the demo's accounts carry a prefix of their own (``demo-3f2a1b-shop-billclap``), so a production
worker never takes its rows for a real account, and every row it wrote is removed on the way
out, whichever way that is: the end, an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from worker.errors import StoreError
from worker.store.database import Pool
from worker.store.demo import demo_rows_delete

T = TypeVar("T")
SOURCES = ("INVOICE_SYNC_CONFIG", "INVOICE_SYNC_DATABASE_URL", "INVOICE_SYNC_DATABASE_URL_FILE")


def ignored_configuration(explicit_config: str | None) -> str | None:
    """The line saying which configuration the demo leaves alone, or None when none is set."""
    named = [f"--config {explicit_config}"] if explicit_config else []
    named += [variable for variable in SOURCES if os.environ.get(variable)]
    if not named:
        return None
    return (
        f"Not using the configured database ({', '.join(named)}): the demo runs on its own "
        "embedded PostgreSQL (--use-configured-database to run in that one instead)."
    )


async def remove_rows(pool: Pool, accounts: Sequence[str]) -> int:
    """Delete every row of ``accounts`` (outbox, synced, dead letters, account state, rate
    buckets) in one statement, finishing even if a second Ctrl-C cancels the caller meanwhile;
    how many rows went."""
    try:
        deleted = await finished_regardless(demo_rows_delete(pool, accounts))
    except StoreError as exc:
        names = ", ".join(accounts)
        raise StoreError(f"the demo could not remove its rows (accounts {names}): {exc}") from exc
    return deleted


async def finished_regardless(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to its end although this task is cancelled meanwhile; a cancellation
    that came is raised once it is done."""
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()
