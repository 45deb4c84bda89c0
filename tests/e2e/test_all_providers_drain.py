"""One account per provider, drained together with faults on: every row synced or dead-lettered,
each sandbox holds exactly one invoice per synced row (reconciliation included), and no request
carries another provider's auth header.

CI runs 100 invoices per account; INVOICE_SYNC_E2E_PER_ACCOUNT=1000 is the size of a manual run.
Run with ``-s`` to see the summary.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.fleet import account_block, option_flags, sandbox
from tests.e2e.processes import cli, get_json, write_config
from tests.factories import invoice
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.profile import SandboxProfile

pytestmark = pytest.mark.e2e

PER_ACCOUNT = int(os.environ.get("INVOICE_SYNC_E2E_PER_ACCOUNT", "100"))
FAULTS = ["--error-rate", "0.05", "--stall-rate", "0.02", "--stall-seconds", "2", "--seed", "5"]
# Each provider's own rate limit where its sandbox has one, set below the rate the account is
# configured for, so its 429s happen (Billit: 60 a minute by default; faster for a test).
SANDBOX_OPTIONS: dict[str, dict[str, Any]] = {"billit": {"rate_limit_per_minute": 600}}
ACCOUNT_RATE = "40/second"


def sandbox_flags(profile: SandboxProfile) -> list[str]:
    return [
        *option_flags({**profile.options, **SANDBOX_OPTIONS.get(profile.provider, {})}),
        *FAULTS,
    ]


def number_of(key: str) -> str:
    provider, index = key.rsplit("-", 1)
    return f"{provider[:3].upper()}-{index}"


def jsonl(profile: SandboxProfile) -> str:
    rows = []
    for i in range(PER_ACCOUNT):
        key = f"{profile.provider}-{i}"
        payload = {**invoice(number_of(key)), "provider_options": profile.sample_options(i)}
        payload["lines"][0]["unit_price"] = 100 + i  # shops' totals differ (see fleet.py)
        rows.append({"account": profile.provider, "idempotency_key": key, "payload": payload})
    return "\n".join(json.dumps(r) for r in rows) + "\n"


async def test_every_provider_drains_with_faults_and_no_duplicates(
    dsn: str, tmp_path: Path
) -> None:
    profiles = [PROFILES[name] for name in sorted(PROFILES)]
    with ExitStack() as stack:
        urls = {p.provider: stack.enter_context(sandbox(p, sandbox_flags(p))).url for p in profiles}
        accounts = "\n".join(
            account_block(
                p, urls[p.provider], name=p.provider, rate_limit=ACCOUNT_RATE, concurrency=8
            )
            for p in profiles
        )
        config = write_config(tmp_path / "c.toml", dsn, accounts, max_attempts="25")
        for profile in profiles:
            loaded = cli("enqueue", "-", config=config, stdin=jsonl(profile))
            assert loaded.returncode == 0, loaded.stderr
        run = cli("run", "--drain", config=config, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        created = {
            name: get_json(url + "/_sandbox/created")["created"] for name, url in urls.items()
        }
        stats = {name: get_json(url + "/_sandbox/stats") for name, url in urls.items()}

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
        synced = await conn.fetch(
            "SELECT account, idempotency_key, invoice_number, recovered FROM invoice_sync.synced"
        )
        dead = await conn.fetch(
            "SELECT account, idempotency_key, reason FROM invoice_sync.dead_letter"
        )
    finally:
        await conn.close()

    summary = []
    for profile in profiles:
        name = profile.provider
        ours = [r for r in synced if r["account"] == name]
        lost = [r for r in dead if r["account"] == name]
        assert len(ours) + len(lost) == PER_ACCOUNT
        identities = Counter(profile.identity(record) for record in created[name])
        assert all(count == 1 for count in identities.values()), "an invoice was created twice"
        for row in ours:  # exactly one invoice at the provider for each synced row
            key = row["idempotency_key"]
            assert identities[number_of(key) if profile.numbers_invoices else key] == 1, (name, key)
        assert len(created[name]) == len(ours) + sum(1 for r in lost if r["reason"] == "duplicate")
        headers = set(stats[name]["auth_headers"])
        assert len(headers) == 1, (name, headers)  # only its own credential header, ever
        reasons = Counter(r["reason"] for r in lost)
        recovered = sum(1 for r in ours if r["recovered"])
        summary.append(
            f"{name}: synced {len(ours)} (recovered {recovered}), dead {dict(reasons)}, "
            f"faults {stats[name]['faults_injected']}, auth headers {sorted(headers)}"
        )
        if profile.reconciles:
            assert not lost, (name, reasons)
    print("\n" + "\n".join(summary))
