"""`invoice-sync cancel` and the cancelled counts in `status`, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e

ACCOUNT = f"""[accounts.shop]
provider = "billclap"
base_url = "http://127.0.0.1:9"
token = "{TOKEN}"
rate_limit = "10/second"
"""


async def test_cancel_prints_the_state_exits_by_it_and_is_audited(dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", dsn, ACCOUNT)
    conn = await asyncpg.connect(dsn)
    try:
        for key in ("k1", "k2"):
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)",
                key,
                json.dumps(invoice(number=key)),
            )
        await conn.execute(
            "UPDATE invoice_sync.outbox SET state = 'running' WHERE idempotency_key = 'k2'"
        )
    finally:
        await conn.close()

    done = cli("cancel", "shop", "k1", "--reason", "order cancelled", config=config)
    assert (done.returncode, done.stdout.strip()) == (0, "shop k1: cancelled"), done.stderr
    again = cli("cancel", "shop", "k1", "--reason", "twice", config=config)
    assert (again.returncode, again.stdout.strip()) == (0, "shop k1: cancelled (already)")
    busy = cli("cancel", "shop", "k2", "--reason", "late", config=config)
    assert busy.returncode == 1
    assert busy.stdout.startswith("shop k2: in_flight: an attempt is under way")
    missing = cli("cancel", "shop", "nope", "--reason", "x", config=config)
    assert (missing.returncode, missing.stderr) == (
        1,
        "invoice-sync: cancel: no invoice shop nope\n",
    )
    empty = cli("cancel", "shop", " ", "--reason", "x", config=config)
    assert (empty.returncode, empty.stderr) == (2, "invoice-sync: cancel: KEY must not be empty\n")
    no_reason = cli("cancel", "shop", "k1", config=config)
    assert no_reason.returncode == 2
    assert no_reason.stderr.count("\n") == 1

    status = json.loads(cli("status", "--json", config=config).stdout)
    assert status["accounts"]["shop"]["cancelled"] == 1
    assert status["result_notifications_skipped"] == 0
    table = cli("status", config=config).stdout.splitlines()
    assert table[0].split()[5] == "cancelled"
    assert table[1].split()[:6] == ["shop", "0", "1", "0", "0", "1"]

    conn = await asyncpg.connect(dsn)
    try:
        audit = await conn.fetch(
            "SELECT action, rows, reason, target FROM invoice_sync.audit ORDER BY id"
        )
        kept = await conn.fetchrow("SELECT reason, payload FROM invoice_sync.cancelled")
    finally:
        await conn.close()
    assert [(a["action"], a["rows"], a["reason"]) for a in audit] == [
        ("cancel", 1, "order cancelled"),
        ("cancel", 0, "twice"),
        ("cancel", 0, "late"),
        ("cancel", 0, "x"),
    ]
    assert json.loads(audit[2]["target"])["state"] == "in_flight"
    assert kept["reason"] == "order cancelled"
    assert json.loads(kept["payload"]) == invoice(number="k1")
