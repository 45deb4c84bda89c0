"""kill -9 during stalled Billit creates of a flash sale: 40 invoices to one customer with one
product, every one committed at Billit while its answer hangs, then every replica killed and
restarted. The rows come back (their leases expire) with an unknown outcome, and each row's tag
scan must find its own invoice among 40 look-alikes: every row synced as recovered, Billit
holds exactly one invoice per row, no ``ambiguous``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.billit_fleet import VATS, change, enqueue, warm_every_replica
from tests.e2e.daemons import daemons, read_logs, wait_until_drained
from tests.e2e.processes import TOKEN, get_json, sandbox, write_config

pytestmark = pytest.mark.e2e

SALE = 40


def account(url: str) -> str:
    # Enough call slots for every create of the sale to be sent (and stall) before the kill.
    return "\n".join(
        [
            "[accounts.athens]",
            'provider = "billit"',
            f'base_url = "{url}/v1"',
            f'token = "{TOKEN}"',
            'rate_limit = "20/second"',
            "concurrency = 40",
            "invoice_type_id = 1",
            'currency = "INR"',
        ]
    )


async def test_kill_9_during_stalled_look_alike_creates_settles_every_row(
    dsn: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    flags = ["--token", TOKEN, "--option", "rate_limit_per_minute=null", "--option", f"vats={VATS}"]
    with sandbox("billit", *flags) as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url), lease='"10s"')
        # The creates must still hang when the replicas die: wait longer than the test does.
        text = config.read_text().replace('request_timeout = "1s"', 'request_timeout = "60s"')
        config.write_text(text)
        conn = await asyncpg.connect(dsn)
        try:
            with daemons(config, 3, logs) as fleet:
                await warm_every_replica(conn, fleet, logs, "athens")
                warm = len(get_json(url + "/_sandbox/created")["created"])
                change(url, {"faults": {"stall_rate": 1, "stall_seconds": 120}})
                await enqueue(conn, "athens", [f"FS-{i}" for i in range(SALE)])
                while len(get_json(url + "/_sandbox/created")["created"]) < warm + SALE:
                    await asyncio.sleep(0.1)
                for index in range(fleet.size):
                    fleet.kill_and_restart(index)
                change(url, {"faults": {"stall_rate": 0}})
                await wait_until_drained(dsn, within=90)
            dead = await conn.fetch("SELECT idempotency_key, reason FROM invoice_sync.dead_letter")
            synced = await conn.fetch(
                "SELECT idempotency_key, provider_invoice_id, recovered FROM invoice_sync.synced"
                " WHERE idempotency_key LIKE 'FS-%'"
            )
        finally:
            await conn.close()
        created = get_json(url + "/_sandbox/created")["created"]

    assert [dict(row) for row in dead] == [], read_logs(logs)[-3000:]
    assert len(synced) == SALE
    assert all(row["recovered"] for row in synced)
    assert len(created) == warm + SALE  # not one invoice sent twice
    tags = Counter(tag for record in created for tag in record["tags"])
    assert all(count == 1 for count in tags.values())
    by_uuid = {record["uuid"]: record for record in created}
    for row in synced:
        assert (
            f"invoice-sync:{row['idempotency_key']}" in by_uuid[row["provider_invoice_id"]]["tags"]
        )
