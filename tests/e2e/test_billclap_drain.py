"""`invoice-sync run --drain` as a subprocess against the BillClap sandbox with faults on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e

# CI runs 300 invoices; INVOICE_SYNC_E2E_SIZE=1000 is the size of a manual run.
SIZE = int(os.environ.get("INVOICE_SYNC_E2E_SIZE", "300"))


def account(url: str, **extra: str) -> str:
    lines = [
        "[accounts.shop]",
        'provider = "billclap"',
        f'base_url = "{url}"',
        f'token = "{TOKEN}"',
        'rate_limit = "2000/second"',
        "concurrency = 16",
    ]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines)


def jsonl(count: int, prefix: str) -> str:
    rows = [
        {
            "account": "shop",
            "idempotency_key": f"{prefix}-{i}",
            "payload": invoice(number=f"{prefix}-{i}"),
        }
        for i in range(count)
    ]
    return "\n".join(json.dumps(r) for r in rows) + "\n"


async def test_drain_with_faults_loses_nothing_and_duplicates_nothing(
    dsn: str, tmp_path: Path
) -> None:
    faults = [
        "--token",
        TOKEN,
        "--error-rate",
        "0.05",
        "--stall-rate",
        "0.02",
        "--stall-seconds",
        "2",
        "--seed",
        "11",
    ]
    with sandbox("billclap", *faults) as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url))
        assert cli("migrate", config=config).returncode == 0
        loaded = cli("enqueue", "-", config=config, stdin=jsonl(SIZE, "WEB"))
        assert loaded.returncode == 0, loaded.stderr
        assert f"loaded {SIZE}" in loaded.stdout
        # A producer writing straight to the outbox: one malformed payload, one number taken.
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', 'broken', $1::jsonb)",
                json.dumps({"lines": [], "customer": {"name": "X"}}),
            )
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', 'dup', $1::jsonb)",
                json.dumps(invoice(number="WEB-0")),
            )
        finally:
            await conn.close()

        run = cli("run", "--drain", config=config, timeout=240)
        assert run.returncode == 0, run.stderr[-2000:]
        created = get_json(url + "/_sandbox/created")["created"]
        stats = get_json(url + "/_sandbox/stats")

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
        synced = await conn.fetch(
            "SELECT idempotency_key, invoice_number, provider_invoice_id FROM invoice_sync.synced"
        )
        dead = await conn.fetch(
            "SELECT idempotency_key, reason, error FROM invoice_sync.dead_letter"
        )
    finally:
        await conn.close()

    assert len(synced) + len(dead) == SIZE + 2
    by_number: dict[str, list[dict[str, object]]] = {}
    for record in created:
        by_number.setdefault(record["invoice_number"], []).append(record)
    for row in synced:  # exactly one invoice at the provider per synced row, and it is ours
        [only] = by_number[row["invoice_number"]]
        assert str(only["invoice_id"]) == row["provider_invoice_id"]
    reasons = {r["idempotency_key"]: r["reason"] for r in dead}
    assert reasons["broken"] == "invalid_payload"
    assert reasons.get("dup") == "duplicate" or reasons.get("WEB-0") == "duplicate"
    # Anything else dead-lettered is a stall's invoice that BillClap cannot look up: the number
    # exists (ours, from the stalled attempt) and the error says so.
    for row in dead:
        if row["idempotency_key"] not in {"broken", "dup", "WEB-0"}:
            assert row["reason"] == "duplicate", dict(row)
            assert "unknown" in row["error"]
            assert len(by_number[row["idempotency_key"]]) == 1
    assert stats["faults_injected"]["error"] > 0
    assert stats["faults_injected"]["stall"] > 0
    assert TOKEN not in run.stdout + run.stderr
    assert '"event": "invoice.synced"' in run.stdout


async def test_credits_running_out_pauses_the_account_and_shows_in_status(
    dsn: str, tmp_path: Path
) -> None:
    with sandbox("billclap", "--token", TOKEN, "--credits", "5") as url:
        config = write_config(
            tmp_path / "c.toml", dsn, account(url).replace("concurrency = 16", "concurrency = 1")
        )
        assert cli("enqueue", "-", config=config, stdin=jsonl(10, "CR")).returncode == 0
        run = cli("run", "--drain", config=config)
        assert run.returncode == 0, run.stderr[-2000:]
    status = json.loads(cli("status", "--json", config=config).stdout)["accounts"]["shop"]
    assert status["synced"] == 5
    assert status["dead_letter"] == {"credits_expired": 1}
    assert status["pending"] == 4  # held, not flooded into the dead letters
    assert status["paused"]["reason"] == "credits_expired"
    table = cli("status", config=config).stdout
    assert "paused: credits_expired" in table
    assert "credits_expired=1" in table
