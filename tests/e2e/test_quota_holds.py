"""Quota holds at a provider's true limit: three replicas share a Billit account configured
``rate_limit = "10/second"`` (and a burst of 10) against a sandbox enforcing 10 a second that,
like Billit, reports ``X-RateLimit-Remaining`` on every answer and gives no reset until it
refuses one. Each burst of ten ends on "Remaining: 0": the account is held for its rate's
window (a second, not Billit's documented minute), then the next burst finds the quota back.
At most one 429 (see the assertion), and at least 90% of the limit used.

CI runs R=10 for 10 s; INVOICE_SYNC_QUOTA_RATE=10 INVOICE_SYNC_QUOTA_SECONDS=60 is the
manual size. Run with ``-s`` to see the figure.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.billit_fleet import VATS, change, enqueue, warm_every_replica
from tests.e2e.daemons import daemons, read_logs
from tests.e2e.processes import TOKEN, get_json, sandbox, write_config

pytestmark = pytest.mark.e2e

RATE = float(os.environ.get("INVOICE_SYNC_QUOTA_RATE", "10"))
SECONDS = float(os.environ.get("INVOICE_SYNC_QUOTA_SECONDS", "10"))
SETTLE = 1.0


def account(url: str) -> str:
    return "\n".join(
        [
            "[accounts.athens]",
            'provider = "billit"',
            f'base_url = "{url}/v1"',
            f'token = "{TOKEN}"',
            f'rate_limit = "{RATE:g}/second"',
            f"rate_burst = {RATE:g}",
            "concurrency = 16",
            "invoice_type_id = 1",
            'currency = "INR"',
        ]
    )


async def test_three_replicas_held_by_a_per_second_quota_use_it_without_429(
    dsn: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    flags = [
        "--token",
        TOKEN,
        "--latency",
        "0.02",
        "--option",
        "rate_limit_per_minute=null",
        "--option",
        f"vats={VATS}",
    ]
    with sandbox("billit", *flags) as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url))
        conn = await asyncpg.connect(dsn)
        try:
            with daemons(config, 3, logs) as fleet:
                await warm_every_replica(conn, fleet, logs, "athens")
                warm = len(get_json(url + "/_sandbox/created")["created"])
                change(url, {"faults": {"limit_rate": RATE, "limit_burst": RATE}})
                await asyncio.sleep(1.5)  # the account's bucket full again, like Billit's
                total = int(RATE * (SETTLE + SECONDS + 3) * 1.2)
                await enqueue(conn, "athens", [f"Q-{i}" for i in range(total)])
                while len(get_json(url + "/_sandbox/created")["created"]) == warm:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(SETTLE + SECONDS + 0.5)
                created = get_json(url + "/_sandbox/created")["created"][warm:]
                stats = get_json(url + "/_sandbox/stats")
        finally:
            await conn.close()

    times = sorted(datetime.fromisoformat(r["created_at"]).timestamp() for r in created)
    start = times[0] + SETTLE
    in_window = sum(1 for t in times if start <= t < start + SECONDS)
    used = in_window / (RATE * SECONDS)
    refused = stats["faults_injected"].get("limited", 0)
    text = read_logs(logs)
    holds = [
        json.loads(line)["seconds"] for line in text.splitlines() if '"account.throttled"' in line
    ]
    print(
        f"\nquota holds: {in_window} invoices in {SECONDS:g} s at R={RATE:g}/s = {used:.1%}; "
        f"429s: {refused}; holds: {len(holds)} of {sorted(set(holds))} s"
    )
    # At most one refusal: a replica whose claim lands in the same instant as another's at the
    # window's edge can see one 429 (it is retried, nothing is lost). Seen in two full CI runs
    # on a busy 2-core machine, never alone in five runs; the hold itself is what this checks.
    assert refused <= 1, text[-3000:]
    assert holds, "no answer said the quota was spent: the test did not reach the limit"
    assert max(holds) <= 1.0, holds  # the rate's window: a second, not a minute
    assert used >= 0.9, text[-3000:]
    assert used <= 1.03
