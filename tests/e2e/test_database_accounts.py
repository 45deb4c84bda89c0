"""`invoice-sync run --drain` with an account added by `accounts add` (its token sealed in the
database) beside a TOML account, against the BillClap sandbox, which checks the token: a synced
invoice proves the replica opened the right secret. And the start-up refusals: no key, a name
in both places; and a hand-written bad row skipped, once a row opens it, while the others run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, sandbox, write_config
from tests.factories import invoice
from worker.sealed import new_key

pytestmark = pytest.mark.e2e


def toml_account(url: str) -> str:
    return "\n".join(
        ["[accounts.toml-shop]", 'provider = "billclap"', f'base_url = "{url}"',
         f'token = "{TOKEN}"', 'rate_limit = "2000/second"'],
    )  # fmt: skip


async def sql(dsn: str, statement: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


async def scalar(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def enqueue(dsn: str, account: str, count: int) -> None:
    for i in range(count):
        await sql(
            dsn,
            "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)",
            account,
            f"{account}-{i}",
            json.dumps(invoice(number=f"{account.upper()}-{i}")),
        )


async def test_a_database_account_drains_beside_a_toml_one(dsn: str, tmp_path: Path) -> None:
    key = {"INVOICE_SYNC_SECRET_KEY": new_key()}
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(tmp_path / "c.toml", dsn, toml_account(url))
        assert cli("migrate", config=config).returncode == 0
        added = cli(
            "accounts", "add", "db-shop", "--provider", "billclap", "--set", f"base_url={url}",
            "--rate-limit", "2000/second", "--concurrency", "8", "--secret-stdin",
            config=config, env=key, stdin=TOKEN + "\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        # Written by hand, past the CLI's checks: an option BillClap does not know.
        await sql(
            dsn,
            "INSERT INTO invoice_sync.account (name, provider, options, updated_by)"
            " VALUES ('bad-shop', 'billclap', $1::jsonb, 'psql')",
            json.dumps({"base_url": url, "bogus": 1}),
        )
        await enqueue(dsn, "db-shop", 20)
        await enqueue(dsn, "toml-shop", 5)
        # A row opens its account: bad-shop's is where its options are found wrong.
        await enqueue(dsn, "bad-shop", 2)

        no_key = cli("run", "--drain", config=config)
        assert no_key.returncode == 2
        assert len(no_key.stderr.splitlines()) == 1
        assert "account db-shop: cannot decrypt its secret" in no_key.stderr

        drained = cli("run", "--drain", config=config, env=key, timeout=120)
        assert drained.returncode == 0, drained.stderr[-2000:]
        events = [json.loads(line) for line in drained.stdout.splitlines() if line.startswith("{")]
        [invalid] = [e for e in events if e["event"] == "account.invalid"]
        assert invalid["account"] == "bad-shop"
        synced = [e["account"] for e in events if e["event"] == "invoice.synced"]
        assert (synced.count("db-shop"), synced.count("toml-shop")) == (20, 5)
        # Left out, not dead-lettered: its rows wait for the row to be fixed.
        assert await scalar(dsn, "SELECT count(*) FROM invoice_sync.outbox") == 2
        assert await scalar(dsn, "SELECT count(*) FROM invoice_sync.dead_letter") == 0
        assert TOKEN not in drained.stdout + drained.stderr
        shown = cli("accounts", "show", "db-shop", config=config, env=key)
        listed = cli("accounts", "list", config=config, env=key)
        assert TOKEN not in shown.stdout + listed.stdout
        assert "db-shop  billclap  database  active" in listed.stdout
        assert "toml-shop  billclap  config  active" in listed.stdout

        await sql(
            dsn,
            "INSERT INTO invoice_sync.account (name, provider, options, updated_by)"
            " VALUES ('toml-shop', 'billclap', $1::jsonb, 'psql')",
            json.dumps({"base_url": url}),
        )
        both = cli("run", "--drain", config=config, env=key)
        assert both.returncode == 2
        assert "accounts.toml-shop: defined both in the config and in the database" in both.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return str(response.read().decode())


def start_daemon(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "worker", "--config", str(config), "run"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env}
    )


async def scrape(url: str, daemon: subprocess.Popen[bytes]) -> str:
    for _ in range(200):
        assert daemon.poll() is None, daemon.communicate()[0].decode()[-2000:]
        try:
            return fetch(url)
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_metrics_count_the_skipped_row_and_show_no_secret(dsn: str, tmp_path: Path) -> None:
    key = {"INVOICE_SYNC_SECRET_KEY": new_key()}
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(tmp_path / "c.toml", dsn, "")
        assert cli("migrate", config=config).returncode == 0
        added = cli(
            "accounts", "add", "db-shop", "--provider", "billclap", "--set", f"base_url={url}",
            "--secret-stdin", config=config, env=key, stdin=TOKEN,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        await sql(
            dsn,
            "INSERT INTO invoice_sync.account (name, provider, options, updated_by)"
            " VALUES ('bad-shop', 'billclap', '{}'::jsonb, 'psql')",
        )
        await enqueue(dsn, "db-shop", 3)
        await enqueue(dsn, "bad-shop", 1)  # what opens it, and finds it invalid
        port = free_port()
        daemon = start_daemon(config, {**key, "INVOICE_SYNC_OBSERVE__LISTEN": f"127.0.0.1:{port}"})
        try:
            metrics = ""
            for _ in range(100):
                metrics = await scrape(f"http://127.0.0.1:{port}/metrics", daemon)
                if (
                    'account="db-shop",outcome="synced",reason=""} 3.0' in metrics
                    and "invoice_sync_accounts_invalid 1.0" in metrics
                ):
                    break
                await asyncio.sleep(0.1)
        finally:
            daemon.send_signal(signal.SIGTERM)
            output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output.decode()[-2000:]
    assert (
        'invoice_sync_invoices_total{account="db-shop",outcome="synced",reason=""} 3.0' in metrics
    )
    assert "invoice_sync_accounts_invalid 1.0" in metrics
    assert TOKEN not in metrics
    assert TOKEN not in output.decode()
