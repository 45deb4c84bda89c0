"""Long-running `invoice-sync run` processes for the e2e tests that only need them started and
stopped (``fleet.Fleet`` underneath), waiting for a drain, and their logs as text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from tests.e2e.fleet import Fleet


@contextmanager
def daemons(config: Path, count: int, logs: Path) -> Iterator[Fleet]:
    """``count`` daemons on one config (a ``Fleet`` logging to ``logs``), stopped with SIGTERM
    (then killed) on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(config=config, log_dir=logs, size=count)
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


async def wait_until_drained(dsn: str, within: float) -> None:
    """Until the outbox is empty; ``AssertionError`` with the states left after ``within`` s."""
    deadline = time.monotonic() + within
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            left = await conn.fetch(
                "SELECT state, count(*) FROM invoice_sync.outbox GROUP BY state"
            )
            if not left:
                return
            assert time.monotonic() < deadline, {r["state"]: r["count"] for r in left}
            await conn.execute("SELECT pg_sleep(0.2)")
    finally:
        await conn.close()


def read_logs(logs: Path) -> str:
    """Everything the daemons of ``daemons(..., logs)`` wrote, as text."""
    return "\n".join(path.read_text(errors="replace") for path in sorted(logs.glob("replica*")))
