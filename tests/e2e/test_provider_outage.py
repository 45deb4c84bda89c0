"""Provider outage: the sandbox resets every connection for a while. The account's breaker
opens (few requests reach the dead provider), no invoice is dead-lettered for it, and every row
syncs once the provider is back.

CI keeps it down 15 s; INVOICE_SYNC_OUTAGE_SECONDS=60 is the setting of a manual run.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.daemons import daemons, read_logs, wait_until_drained
from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e

DOWN = float(os.environ.get("INVOICE_SYNC_OUTAGE_SECONDS", "15"))
SIZE = 300
FAILURES, COOLDOWN, CONCURRENCY = 3, 1.0, 4


def post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def account(url: str) -> str:
    return "\n".join(
        [
            "[accounts.shop]",
            'provider = "billclap"',
            f'base_url = "{url}"',
            f'token = "{TOKEN}"',
            'rate_limit = "100/second"',
            f"concurrency = {CONCURRENCY}",
        ]
    )


def resets(url: str) -> int:
    count: int = get_json(url + "/_sandbox/stats")["faults_injected"].get("reset", 0)
    return count


async def test_a_provider_outage_opens_the_breaker_and_loses_nothing(
    dsn: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"account": "shop", "idempotency_key": f"O-{i}", "payload": invoice(f"O-{i}")})
        for i in range(SIZE)
    ]
    with sandbox("billclap", "--token", TOKEN, "--latency", "0.01") as url:
        config = write_config(
            tmp_path / "c.toml",
            dsn,
            account(url),
            poll_interval='"200ms"',
            base_retry_delay='"100ms"',
            max_retry_delay='"1s"',
            max_attempts="10",
            breaker_failures=str(FAILURES),
            breaker_cooldown=f'"{COOLDOWN:g}s"',
            breaker_max_cooldown='"4s"',
        )
        assert cli("enqueue", "-", config=config, stdin="\n".join(lines)).returncode == 0
        with daemons(config, 1, tmp_path / "logs"):
            while len(get_json(url + "/_sandbox/created")["created"]) < 30:
                await asyncio.sleep(0.05)
            post_json(url + "/_sandbox/state", {"faults": {"reset_rate": 1.0}})
            await asyncio.sleep(DOWN)
            hammered = resets(url)
            post_json(url + "/_sandbox/state", {"faults": {"reset_rate": 0.0}})
            await wait_until_drained(dsn, within=60 + DOWN)
        created = get_json(url + "/_sandbox/created")["created"]

    conn = await asyncpg.connect(dsn)
    try:
        synced = await conn.fetchval("SELECT count(*) FROM invoice_sync.synced")
        dead = await conn.fetch(
            "SELECT idempotency_key, reason, error FROM invoice_sync.dead_letter"
        )
    finally:
        await conn.close()
    logs = read_logs(tmp_path / "logs")
    # Before the breaker opens: the calls in flight plus the failures that open it; then one
    # half-open call per cool-down (which only grows).
    bound = CONCURRENCY + FAILURES + DOWN / COOLDOWN + 2
    print(
        f"\nprovider outage {DOWN:g} s: {hammered} requests reached it (bound {bound:g}); "
        f"synced {synced}, dead {len(dead)}"
    )
    assert [dict(r) for r in dead] == []
    assert synced == SIZE
    numbers = [record["invoice_number"] for record in created]
    assert len(numbers) == len(set(numbers)) == SIZE
    assert '"event": "account.breaker_opened"' in logs
    assert hammered <= bound, hammered
