"""Long-running `invoice-sync run` processes for e2e tests: start several, stop them, read logs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg


@contextmanager
def daemons(config: Path, count: int, logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` daemons on one config, logging to ``logs/replica-N.log``; stopped with SIGTERM
    (then killed) on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for index in range(count):
        out = (logs / f"replica-{index}.log").open("wb")
        command = [sys.executable, "-m", "worker", "--config", str(config), "run"]
        procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        out.close()
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
    return "\n".join(path.read_text(errors="replace") for path in sorted(logs.glob("*.log")))
