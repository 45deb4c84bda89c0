"""`invoice-sync run --drain` as a subprocess against the Billit sandbox with faults on.

Billit numbers invoices itself, so what proves "never duplicate" here is the tag: after the
drain, every synced row has exactly one invoice at Billit carrying its key, and no key has two.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice
from worker.testing.sandbox.billit.app import PROFILE

pytestmark = pytest.mark.e2e

SIZE = int(os.environ.get("INVOICE_SYNC_E2E_SIZE", "150"))
# The sandbox account carries the rates the shared test invoices use (18% among them).
VATS = json.dumps(PROFILE.options["vats"], separators=(",", ":"))


def account(url: str) -> str:
    lines = [
        "[accounts.athens]",
        'provider = "billit"',
        f'base_url = "{url}/v1"',
        f'token = "{TOKEN}"',
        'rate_limit = "2000/second"',
        "concurrency = 8",
        "invoice_type_id = 1",
        'currency = "INR"',
    ]
    return "\n".join(lines)


def jsonl(count: int) -> str:
    rows = [
        {"account": "athens", "idempotency_key": f"B-{i}", "payload": invoice(number=f"B-{i}")}
        for i in range(count)
    ]
    return "\n".join(json.dumps(r) for r in rows) + "\n"


async def test_drain_with_stalls_recovers_by_tag_and_duplicates_nothing(
    dsn: str, tmp_path: Path
) -> None:
    flags = [
        "--token",
        TOKEN,
        "--option",
        "rate_limit_per_minute=null",
        "--option",
        f"vats={VATS}",
        "--error-rate",
        "0.05",
        "--stall-rate",
        "0.05",
        "--stall-seconds",
        "2",
        "--seed",
        "5",
    ]
    with sandbox("billit", *flags) as url:
        # 10% of requests fail and a recovering attempt makes several: the breaker (tested on
        # its own elsewhere) would spend most of this test cooling down.
        config = write_config(tmp_path / "c.toml", dsn, account(url), breaker_failures="1000")
        assert cli("migrate", config=config).returncode == 0
        loaded = cli("enqueue", "-", config=config, stdin=jsonl(SIZE))
        assert loaded.returncode == 0, loaded.stderr
        run = cli("run", "--drain", config=config, timeout=240)
        assert run.returncode == 0, run.stderr[-2000:]
        created = get_json(url + "/_sandbox/created")["created"]
        stats = get_json(url + "/_sandbox/stats")

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
        synced = await conn.fetch(
            "SELECT idempotency_key, provider_invoice_id, invoice_number, pdf_url"
            " FROM invoice_sync.synced"
        )
        dead = await conn.fetch("SELECT idempotency_key, reason FROM invoice_sync.dead_letter")
    finally:
        await conn.close()

    assert [dict(row) for row in dead] == []
    assert len(synced) == SIZE
    keys = Counter(PROFILE.identity(record) for record in created)
    assert keys == Counter({f"B-{i}": 1 for i in range(SIZE)})  # one invoice per key, no twin
    by_uuid = {record["uuid"]: record for record in created}
    for row in synced:
        record = by_uuid[row["provider_invoice_id"]]
        assert PROFILE.identity(record) == row["idempotency_key"]
        assert row["invoice_number"] == record["invoice_number"]
        assert row["pdf_url"] == record["permalink"] + "/pdf"
    assert stats["faults_injected"]["stall"] > 0
    assert stats["faults_injected"]["error"] > 0
    assert TOKEN not in run.stdout + run.stderr
    assert '"event": "invoice.synced"' in run.stdout
