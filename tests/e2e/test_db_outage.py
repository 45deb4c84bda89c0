"""PostgreSQL goes away for a while in the middle of a run: the daemon must ride it out.

The daemon reaches the database through a loopback proxy (``tcp_proxy``); mid-run the proxy cuts
every connection and refuses new ones for ``INVOICE_SYNC_OUTAGE_SECONDS`` (20 s by
default), then lets them through again. The daemon must not exit, must not print a traceback,
must keep the outcomes of calls made during the outage, and must finish every row afterwards
without losing or duplicating one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest

from tests.e2e.fleet import Fleet, account_block, account_name, invoices_jsonl, profiles, sandboxes
from tests.e2e.ledger import Ledger
from tests.e2e.processes import cli, write_config
from tests.e2e.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = float(os.environ.get("INVOICE_SYNC_OUTAGE_SECONDS", "20"))
SIZE = int(os.environ.get("INVOICE_SYNC_OUTAGE_SIZE", "200"))
# Slow enough that the run is still going when the database disappears, with calls in flight.
LATENCY = "0.3"
RATE_LIMIT = "20/second"


def proxy_for(dsn: str) -> TcpProxy:
    """A proxy in front of ``dsn``'s server: TCP, or the Unix socket of a ``?host=/dir`` URL
    (the embedded server the tests fall back to when no local one runs)."""
    parts = urlsplit(dsn)
    port = parts.port or 5432
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if socket_dir.startswith("/"):
        return TcpProxy(port, upstream_unix=f"{socket_dir}/.s.PGSQL.{port}")
    return TcpProxy(port, upstream_host=parts.hostname or "127.0.0.1")


def through(dsn: str, port: int) -> str:
    """``dsn`` with its host and port replaced by the proxy's (and no socket directory)."""
    parts = urlsplit(dsn)._replace(query="")
    user, _at, _host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}{'@' if user else ''}127.0.0.1:{port}"))


async def counts(dsn: str) -> tuple[int, int]:
    """(synced, still in the outbox), read directly, not through the proxy."""
    conn = await asyncpg.connect(dsn)
    try:
        synced = await conn.fetchval("SELECT count(*) FROM invoice_sync.synced")
        left = await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        return synced, left
    finally:
        await conn.close()


async def wait_for(
    dsn: str, daemon: Fleet, done: Callable[[int, int], bool], what: str, limit: float
) -> float:
    """Poll until ``done(synced, left)``; fail if the daemon dies or ``limit`` passes."""
    started = time.monotonic()
    while not done(*await counts(dsn)):
        assert daemon.alive() == [0], f"the daemon exited while waiting for {what}"
        assert time.monotonic() - started < limit, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def outage(dsn: str, daemon: Fleet, proxy: TcpProxy) -> dict[str, float]:
    """Take the database away once the run is under way, bring it back, wait for the end."""
    await wait_for(dsn, daemon, lambda synced, _left: synced >= SIZE // 10, "a start", 60)
    before, _ = await counts(dsn)
    proxy.go_down()
    down_at = time.monotonic()
    while time.monotonic() - down_at < OUTAGE_SECONDS:
        assert daemon.alive() == [0], "the daemon exited during the outage"
        await asyncio.sleep(0.5)
    during, _ = await counts(dsn)
    proxy.come_back()
    resumed = await wait_for(dsn, daemon, lambda synced, _left: synced > during, "a write", 120)
    await wait_for(dsn, daemon, lambda _synced, left: left == 0, "the end", 120)
    return {"before": before, "during": during - before, "resumed_after_s": round(resumed, 1)}


async def test_daemon_survives_a_database_outage_and_finishes_every_row(
    dsn: str, tmp_path: Path
) -> None:
    with proxy_for(dsn) as proxy, sandboxes(["--latency", LATENCY]) as running:
        accounts = "\n".join(
            account_block(s.profile, s.url, rate_limit=RATE_LIMIT, concurrency=8)
            for s in running.values()
        )
        config = write_config(
            tmp_path / "outage.toml",
            through(dsn, proxy.port),
            accounts,
            lease='"60s"',
            shutdown_grace='"10s"',
        )
        text, enqueued = invoices_jsonl(SIZE, "DB")
        assert cli("enqueue", "-", config=config, stdin=text).returncode == 0
        daemon = Fleet(config=config, log_dir=tmp_path, size=1)
        daemon.start()
        try:
            figures = await outage(dsn, daemon, proxy)
        finally:
            [code] = daemon.stop()
        created = {account_name(s.profile): s.created() for s in running.values()}

    ledger = await Ledger.read(
        dsn, enqueued=enqueued, accounts={account_name(p): p for p in profiles()}, created=created
    )
    logs = daemon.logs()
    stdout, stderr = logs["replica0.1.out"].decode(), logs["replica0.1.err"].decode()
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    names = sorted({e["event"] for e in events})
    print(
        f"\nOUTAGE {OUTAGE_SECONDS:.0f}s: {figures}, connections cut {proxy.dropped}; "
        f"events: {names}"
    )

    assert ledger.lost() == []
    assert ledger.duplicates() == []
    # No faults but latency: every invoice syncs. A call made during the outage is written
    # afterwards, not lost and re-sent (which would dead-letter it as a duplicate).
    assert ledger.dead == [], ledger.dead[:5]
    assert len(ledger.synced) == SIZE
    assert figures["during"] == 0, "rows were written while the database was away?"
    assert proxy.dropped > 0
    assert {"store.unavailable", "flusher.failed"} <= set(names)
    assert code == 0
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stderr == "", stderr[-3000:]
    assert not [e for e in events if "exception" in e]
