"""An error in the middle of a demo run still stops the embedded server and removes the
temporary directory (the e2e tests cover a normal exit and Ctrl-C)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from tests.e2e.processes import processes_mentioning
from tests.factories import invoice
from worker.cli.main import build_parser
from worker.config import Settings
from worker.demo import command
from worker.testing.postgres import EmbeddedPostgres


@pytest.fixture
def tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Under /tmp, not pytest's tmp_path: see tests/e2e/test_demo.py's fixture of the same name.
    path = Path(tempfile.mkdtemp(prefix="isd-", dir="/tmp"))
    path.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_error_after_the_server_started_stops_it_and_removes_the_directory(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[Path] = []

    async def failing_enqueue(*args: Any, **kwargs: Any) -> None:
        reached.extend(tmp.glob("invoice-sync-demo-*/pgdata/PG_VERSION"))  # noqa: ASYNC240 - a test probe
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(command, "enqueue_lines", failing_enqueue)
    args = build_parser().parse_args(["demo", "--invoices", "20"])
    with pytest.raises(RuntimeError, match="on fire"):
        command.run_from_args(args, Settings(database_url=None))
    assert reached, "the failure was meant to come after the server started"
    assert processes_mentioning(tmp) == []
    assert list(tmp.glob("invoice-sync-demo-*")) == []


def test_a_server_a_failed_start_left_running_is_stopped(tmp: Path) -> None:
    """pg_ctl gives up after 10 s on a slow machine while the server goes on starting: the pid
    file names it, and only a process serving this data dir is signalled."""
    data_dir = tmp / "pgdata"
    data_dir.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = subprocess.Popen([*sleeper, str(data_dir)])
    stranger = subprocess.Popen(sleeper)
    try:
        server = EmbeddedPostgres(data_dir=data_dir)
        (data_dir / "postmaster.pid").write_text(f"{stranger.pid}\n{data_dir}\n")
        server._stop_orphan()
        assert stranger.poll() is None  # a stale pid file naming someone else: left alone
        (data_dir / "postmaster.pid").write_text(f"{ours.pid}\n{data_dir}\n")
        server._stop_orphan()
        assert ours.wait(timeout=5) != 0
    finally:
        for process in (ours, stranger):
            process.kill()
            process.wait()


def test_an_error_in_a_configured_database_removes_the_rows_the_demo_wrote(
    tmp: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker fails after the samples were enqueued: the configured database keeps none of
    them (nor any account state), and no row of another account is touched."""
    asyncio.run(_seed_a_production_row(dsn))
    written: list[int] = []

    async def failing_worker(settings: Settings, *, drain: bool) -> None:
        written.append(await _count(settings.database_dsn(), "outbox"))
        raise RuntimeError("the worker fell over")

    monkeypatch.setattr(command, "run_worker", failing_worker)
    args = build_parser().parse_args(["demo", "--invoices", "20", "--use-configured-database"])
    with pytest.raises(RuntimeError, match="fell over"):
        command.run_from_args(args, Settings(database_url=SecretStr(dsn)))
    assert len(written) == 1
    assert written[0] > 20, "the failure was meant to come after the enqueue"
    left = asyncio.run(_accounts(dsn))
    assert left == {
        "outbox": ["shop-billclap"],
        "account_state": [],
        "dead_letter": [],
        "synced": [],
        "rate_bucket": [],
    }
    assert list(tmp.glob("invoice-sync-demo-*")) == []


async def _seed_a_production_row(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "SELECT invoice_sync.enqueue('shop-billclap', 'prod-1', $1::jsonb)",
            json.dumps(invoice(number="PROD-1")),
        )
    finally:
        await conn.close()


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM invoice_sync.{table}"))
    finally:
        await conn.close()


async def _accounts(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: [
                r["account"] for r in await conn.fetch(f"SELECT account FROM invoice_sync.{table}")
            ]
            for table in ("outbox", "account_state", "dead_letter", "synced", "rate_bucket")
        }
    finally:
        await conn.close()
