"""The daemon's /healthz, /readyz and /metrics, scraped from a running `invoice-sync run`, and the
metrics page checked by promtool (Prometheus' own linter)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import tools
from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def start_daemon(config: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "worker", "--config", str(config), "run"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def promtool_check(metrics: str) -> subprocess.CompletedProcess[str]:
    command = [str(tools.promtool()), "check", "metrics"]
    return subprocess.run(command, input=metrics, capture_output=True, text=True, check=False)


async def wait_for(url: str) -> None:
    for _ in range(200):
        try:
            fetch(url)
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_probes_and_metrics_of_a_running_daemon(dsn: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with sandbox("billclap", "--token", TOKEN, "--credits", "20") as url:
        accounts = "\n".join(
            [
                "[accounts.shop]",
                'provider = "billclap"',
                f'base_url = "{url}"',
                f'token = "{TOKEN}"',
                'rate_limit = "500/second"',
            ]
        )
        config = write_config(tmp_path / "c.toml", dsn, accounts)
        config.write_text(
            config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        )
        lines = [
            json.dumps(
                {"account": "shop", "idempotency_key": f"M-{i}", "payload": invoice(f"M-{i}")}
            )
            for i in range(25)
        ]
        assert cli("enqueue", "-", config=config, stdin="\n".join(lines)).returncode == 0
        daemon = start_daemon(config)
        try:
            await wait_for(base + "/healthz")
            for _ in range(200):  # 20 synced, 1 credits_expired, 4 held by the pause
                if get_json(url + "/_sandbox/stats")["credits_left"] == 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert fetch(base + "/healthz")[0] == 200
            status, body = fetch(base + "/readyz")
            assert status == 200, body
            assert json.loads(body) == {
                "ready": True,
                "database": "ok",
                "schema": "ok",
                "shutdown": "no",
            }
            _, metrics = fetch(base + "/metrics")
        finally:
            daemon.send_signal(signal.SIGTERM)
            output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output.decode()[-2000:]

    assert 'invoice_sync_invoices_total{account="shop",outcome="synced",reason=""} 20.0' in metrics
    assert (
        'invoice_sync_invoices_total{account="shop",outcome="dead_lettered",reason="credits_expired"} 1.0'
        in metrics
    )
    assert (
        'invoice_sync_provider_request_duration_seconds_count{account="shop",outcome="synced"} 20.0'
        in metrics
    )
    assert "invoice_sync_claim_duration_seconds_count" in metrics
    assert "invoice_sync_flush_duration_seconds_count" in metrics
    assert "invoice_sync_database_up 1.0" in metrics
    assert TOKEN not in metrics
    table = OPERATIONS.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(invoice_sync_\w+)`", table, re.MULTILINE)
    assert len(documented) >= 10
    for name in documented:  # docs/operations.md lists what the daemon really exports
        assert f"# HELP {name} " in metrics, name
    checked = promtool_check(metrics)
    assert checked.returncode == 0, checked.stdout + checked.stderr
