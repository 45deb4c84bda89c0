"""`invoice-sync demo` as a person runs it: a subprocess that must finish with a correct summary
and leave nothing behind (no postgres process, no temporary directory) however it ends: done,
Ctrl-C while the worker runs, Ctrl-C while the server starts, or kept with --data-dir."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import cli, processes_mentioning
from worker.testing.sandbox import PROFILES

pytestmark = pytest.mark.e2e

FINISHED = re.compile(
    r"(\d+) of (\d+) invoices finished(?:, (\d+) wait for a paused account,)? in .* invoices/s"
)


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A directory of our own under /tmp. Not pytest's tmp_path: the embedded server runs as
    another user when we are root, and every pytest session on the machine resets
    /tmp/pytest-of-root to 0700, which would lock that user out mid-test."""
    path = Path(tempfile.mkdtemp(prefix="isd-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    """The demo's temporary directory goes under ``tmp``, so the test can look for leftovers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_SYNC_")}
    return {**env, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1", **extra}


def assert_accounted_for(out: str, invoices: int) -> None:
    """Every invoice finished or waits for a paused account: none lost."""
    match = FINISHED.search(out)
    assert match is not None, out
    done, total, held = (int(g or 0) for g in match.groups())
    assert total == invoices
    assert done + held == total


def assert_nothing_left(tmp: Path) -> None:
    deadline = time.monotonic() + 5  # a postgres child may take a moment to reap
    while processes_mentioning(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(tmp) == []
    assert list(tmp.glob("invoice-sync-demo-*")) == []


def start_demo(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(tmp),
    )


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if marker in line:
            return seen
    process.wait(timeout=30)
    errors = process.stderr.read() if process.stderr else ""
    raise AssertionError(f"{marker!r} never printed:\n{seen}\n{errors}")


def test_demo_runs_to_a_summary_and_leaves_nothing(tmp: Path) -> None:
    result = cli("demo", "--invoices", "300", timeout=180, env=env_for(tmp))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Synced per account" in out
    for provider in PROFILES:
        assert f"shop-{provider}" in out
    for reason in ("rejected", "invalid_payload"):
        assert reason in out
    if any(p.limited_credits is not None for p in PROFILES.values()):
        assert "credits_expired" in out
    assert_accounted_for(out, 300)
    assert "Faults the sandboxes injected" in out
    assert "invoice-sync demo --data-dir" in out  # how to keep it next time
    assert "Traceback" not in result.stderr
    assert_nothing_left(tmp)


def test_ctrl_c_while_the_worker_runs_stops_everything(tmp: Path) -> None:
    process = start_demo(tmp, "--invoices", "3000")
    read_until(process, "Running the worker")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "interrupted" in lines[0]
    assert_nothing_left(tmp)


def test_ctrl_c_while_the_server_starts_stops_it_too(tmp: Path) -> None:
    process = start_demo(tmp, "--invoices", "300")
    read_until(process, "Starting the embedded PostgreSQL")
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    # 130 as a rule; 1 when a loaded machine made pg_ctl give up on the start first (one line).
    assert process.returncode in {130, 1}, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert_nothing_left(tmp)


def test_data_dir_keeps_a_database_the_printed_commands_can_use(tmp: Path) -> None:
    kept = tmp / "kept"
    result = cli(
        "demo", "--invoices", "100", "--data-dir", str(kept), timeout=180, env=env_for(tmp)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert processes_mentioning(kept) == []  # stopped with the demo, data kept
    assert (kept / "invoice-sync.toml").is_file()
    assert (kept / "pgdata" / "PG_VERSION").is_file()
    commands = [
        line.split()[1:]
        for line in result.stdout.splitlines()
        if line.startswith("  invoice-sync --config ")
    ]
    assert ["--config", str(kept / "invoice-sync.toml"), "status"] in commands
    assert f"invoice-sync demo --data-dir {kept} --serve" in result.stdout

    server = start_demo(tmp, "--data-dir", str(kept), "--serve")
    try:
        read_until(server, "is up")
        assert "Synced per account" not in read_until(server, "The console:")  # not run again
        for command in commands:
            ran = cli(*command, env=env_for(tmp))
            assert ran.returncode == 0, (command, ran.stderr)
            if command[-1] == "status":
                assert "shop-" in ran.stdout
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    assert server.returncode == 0
    assert processes_mentioning(kept) == []

    # The same directory again: the kept server starts on its data and the demo runs afresh.
    again = cli("demo", "--invoices", "60", "--data-dir", str(kept), timeout=180, env=env_for(tmp))
    assert again.returncode == 0, again.stderr[-3000:]
    assert_accounted_for(again.stdout, 60)
    assert processes_mentioning(kept) == []


def console_address(out: str) -> str:
    match = re.search(r"The console: (http://127\.0\.0\.1:\d+/)", out)
    assert match is not None, out
    return match.group(1)


def test_serve_ends_the_run_with_the_console_open_until_ctrl_c(tmp: Path) -> None:
    process = start_demo(tmp, "--invoices", "100", "--serve")
    try:
        out = read_until(process, "The console:")
        assert "Synced per account" in out
        address = console_address(out)
        with urllib.request.urlopen(address, timeout=10) as response:  # loopback only
            page = response.read().decode()
        assert response.status == 200
        assert "Overview" in page
        for provider in PROFILES:
            assert f"shop-{provider}" in page
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert_nothing_left(tmp)
    with pytest.raises(OSError):  # the console stopped with it
        urllib.request.urlopen(address, timeout=3)


# A production config, as the Docker image and the pod carry one: the demo's account names.
PRODUCTION = """
[accounts.shop-billclap]
provider = "billclap"
base_url = "https://api.billclap.com"
token = "production-token"
"""
TABLES = ("outbox", "synced", "dead_letter", "account_state", "rate_bucket", "replica_account")


def rows_by_table(dsn: str) -> dict[str, list[str]]:
    """The accounts of every row in the tables the demo writes, table by table."""
    return asyncio.run(_rows_by_table(dsn))


async def _rows_by_table(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: [
                r["account"] for r in await conn.fetch(f"SELECT account FROM invoice_sync.{table}")
            ]
            for table in TABLES
        }
    finally:
        await conn.close()


def production_env(tmp: Path, dsn: str) -> dict[str, str]:
    config = tmp / "production.toml"
    config.write_text(f'database_url = "{dsn}"\n{PRODUCTION}')
    return env_for(tmp, INVOICE_SYNC_CONFIG=str(config), INVOICE_SYNC_DATABASE_URL=dsn)


def test_a_configured_database_is_left_alone_without_the_flag(dsn: str, tmp: Path) -> None:
    result = cli(
        "demo", "--invoices", "60", "--no-faults", timeout=180, env=production_env(tmp, dsn)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stdout.splitlines()[0]
    assert first.startswith("Not using the configured database (INVOICE_SYNC_CONFIG, "), first
    assert "Starting the embedded PostgreSQL" in result.stdout
    assert_accounted_for(result.stdout, 60)
    assert rows_by_table(dsn) == {table: [] for table in TABLES}
    assert_nothing_left(tmp)


def test_with_the_flag_the_configured_database_is_used_and_left_clean(dsn: str, tmp: Path) -> None:
    kept = tmp / "kept"
    result = cli(
        "demo",
        "--invoices",
        "60",
        "--no-faults",
        "--use-configured-database",
        "--data-dir",
        str(kept),
        timeout=180,
        env=production_env(tmp, dsn),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using the configured database" in result.stdout
    assert "embedded" not in result.stdout.split("Look around")[0]
    assert re.search(r"Sandbox for demo-[0-9a-f]{6}-shop-billclap ", result.stdout), result.stdout
    assert_accounted_for(result.stdout, 60)
    assert rows_by_table(dsn) == {table: [] for table in TABLES}
    # The config names the database (a password, in production) and so may the log.
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    for name in ("invoice-sync.toml", "worker.log"):
        assert stat.S_IMODE((kept / name).stat().st_mode) == 0o600, name
    assert dsn in (kept / "invoice-sync.toml").read_text()
    assert_nothing_left(tmp)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_with_the_flag_a_signal_mid_run_leaves_no_demo_rows(
    dsn: str, tmp: Path, signum: signal.Signals
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "demo", "--invoices", "3000", "--use-configured-database"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=production_env(tmp, dsn),
    )
    read_until(process, "Running the worker")
    time.sleep(1.0)
    during = rows_by_table(dsn)
    assert len(during["outbox"]) + len(during["synced"]) > 1000  # mid-run, rows written
    assert all(re.match(r"demo-[0-9a-f]{6}-", a) for rows in during.values() for a in rows)
    process.send_signal(signum)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "rows are removed from the configured database" in err
    assert rows_by_table(dsn) == {table: [] for table in TABLES}
    assert_nothing_left(tmp)


def test_the_flag_without_a_configured_database_is_a_usage_error(tmp: Path) -> None:
    result = cli("demo", "--use-configured-database", env=env_for(tmp))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "no database is configured" in result.stderr


def test_too_few_invoices_is_a_usage_error(tmp: Path) -> None:
    result = cli("demo", "--invoices", "3", env=env_for(tmp))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "at least" in result.stderr


def test_serve_on_a_configured_database_is_a_usage_error(dsn: str, tmp: Path) -> None:
    result = cli("demo", "--serve", "--use-configured-database", env=production_env(tmp, dsn))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "invoice-sync console" in result.stderr
    assert rows_by_table(dsn) == {table: [] for table in TABLES}
