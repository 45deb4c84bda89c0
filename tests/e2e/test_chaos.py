"""Chaos: three ``invoice-sync run`` replicas against every registered sandbox, faults on, a random
replica SIGKILLed and restarted every few seconds. Nothing may be lost or duplicated.

CI size is 3,000 invoices; ``INVOICE_SYNC_CHAOS_SIZE=20000`` is the size of a manual run
(``INVOICE_SYNC_CHAOS_KILL_SECONDS`` and ``INVOICE_SYNC_CHAOS_DRAIN_SECONDS`` scale with it).
The run prints a summary (``pytest -s`` shows it) for the release notes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.fleet import (
    Fleet,
    account_block,
    account_name,
    invoices_jsonl,
    profiles,
    sandboxes,
)
from tests.e2e.ledger import Ledger
from tests.e2e.processes import cli, write_config

pytestmark = pytest.mark.e2e

SIZE = int(os.environ.get("INVOICE_SYNC_CHAOS_SIZE", "3000"))
KILL_SECONDS = float(os.environ.get("INVOICE_SYNC_CHAOS_KILL_SECONDS", str(max(20, SIZE / 150))))
DRAIN_SECONDS = float(os.environ.get("INVOICE_SYNC_CHAOS_DRAIN_SECONDS", str(60 + SIZE / 25)))
SEED = int(os.environ.get("INVOICE_SYNC_CHAOS_SEED", str(random.randrange(1 << 30))))
REPLICAS = 3
NUMBERLESS_EVERY = 25  # 4% of invoices carry no number: the case with no safe retry
REQUEST_TIMEOUT = 1.0
FAULTS = {
    "--error-rate": "0.05",
    "--rate429-rate": "0.03",
    "--stall-rate": "0.02",
    "--reset-rate": "0.01",
    # Commit-then-stall: the answer comes after the worker gave up on it.
    "--stall-seconds": str(REQUEST_TIMEOUT * 3),
    "--retry-after": os.environ.get("INVOICE_SYNC_CHAOS_RETRY_AFTER", "0.2"),
}
# What a chaos run may dead-letter: stalled numbered invoices that the provider refuses as
# repeats and cannot look up (duplicate), and numberless ones with no safe path (ambiguous).
ALLOWED_DEAD = {"duplicate", "ambiguous"}


async def _leftovers(dsn: str) -> list[dict[str, object]]:
    """What is left, by account and state, with an example error: why a drain is stuck."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT account, state, count(*) AS n, max(attempts) AS attempts, min(last_error) AS"
            " error FROM invoice_sync.outbox GROUP BY account, state"
        )
        paused = await conn.fetch("SELECT * FROM invoice_sync.account_state")
    finally:
        await conn.close()
    return [dict(r) for r in rows] + [dict(r) for r in paused]


async def _outbox_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        return count
    finally:
        await conn.close()


async def test_killed_replicas_and_faulty_providers_lose_and_duplicate_nothing(
    dsn: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    flags = [item for pair in FAULTS.items() for item in pair] + ["--seed", str(SEED)]
    with sandboxes(flags) as running:
        accounts = "\n".join(account_block(s.profile, s.url) for s in running.values())
        config = write_config(
            tmp_path / "chaos.toml",
            dsn,
            accounts,
            poll_interval='"200ms"',
            lease='"4s"',
            max_attempts="1000",
            shutdown_grace='"5s"',
            max_retry_delay='"1s"',
        )
        text, enqueued = invoices_jsonl(SIZE, "CH", numberless_every=NUMBERLESS_EVERY)
        loaded = cli("enqueue", "-", config=config, stdin=text, timeout=300)
        assert loaded.returncode == 0, loaded.stderr
        assert f"loaded {SIZE}" in loaded.stdout

        log_dir = tmp_path / "logs"
        log_dir.mkdir()
        fleet = Fleet(config=config, log_dir=log_dir, size=REPLICAS)
        started = time.monotonic()
        fleet.start()
        try:
            # Kill a random replica every 1.5-4 s for a while, then let them drain it.
            while time.monotonic() - started < KILL_SECONDS:
                await asyncio.sleep(rng.uniform(1.5, 4.0))
                fleet.kill_and_restart(rng.randrange(REPLICAS))
            while await _outbox_count(dsn) > 0:
                assert time.monotonic() - started < KILL_SECONDS + DRAIN_SECONDS, (
                    f"not drained: {await _leftovers(dsn)}"
                )
                await asyncio.sleep(0.5)
            duration = time.monotonic() - started
            fleet.wait_started()
        finally:
            exits = fleet.stop()
        created = {account_name(s.profile): s.created() for s in running.values()}
        injected = {provider: s.stats()["faults_injected"] for provider, s in running.items()}

    ledger = await Ledger.read(
        dsn,
        enqueued=enqueued,
        accounts={account_name(p): p for p in profiles()},
        created=created,
    )
    summary = {
        "size": SIZE,
        "seed": SEED,
        "replicas": REPLICAS,
        "kills": fleet.kills,
        "duration_s": round(duration, 1),
        "faults_injected": injected,
        "accounts": ledger.summary(),
        "exit_codes_after_sigterm": exits,
    }
    print("\nCHAOS SUMMARY " + json.dumps(summary, indent=2))

    assert ledger.lost() == []
    assert ledger.duplicates() == []
    assert ledger.misplaced_dead(ALLOWED_DEAD) == []
    assert fleet.kills >= 3
    assert fleet.died == []
    for provider, kinds in injected.items():
        for kind in ("error", "rate429", "stall", "reset"):
            assert kinds.get(kind, 0) > 0, f"{provider}: no {kind} fault was injected"
    # Survivors shut down cleanly, and no replica ever died of an exception of its own.
    assert exits == [0] * REPLICAS
    for name, data in fleet.logs().items():
        if name.endswith(".err"):
            assert b"Traceback" not in data, (name, data[-3000:].decode(errors="replace"))
    await _check_the_story_of_a_row_tried_several_times(dsn, config)


async def _check_the_story_of_a_row_tried_several_times(dsn: str, config: Path) -> None:
    """`invoice-sync show` tells every recorded attempt of the row tried most often."""
    conn = await asyncpg.connect(dsn)
    try:
        busiest = await conn.fetchrow(
            "SELECT account, idempotency_key, count(*) AS n FROM invoice_sync.attempt"
            " GROUP BY 1, 2 ORDER BY n DESC, 2 LIMIT 1"
        )
        assert busiest is not None
        assert busiest["n"] >= 2, "no row needed more than one attempt"
        recorded = await conn.fetch(
            "SELECT outbox_id, claim, outcome FROM invoice_sync.attempt"
            " WHERE account = $1 AND idempotency_key = $2 ORDER BY started_at, outbox_id, claim",
            busiest["account"],
            busiest["idempotency_key"],
        )
    finally:
        await conn.close()
    account, key = busiest["account"], busiest["idempotency_key"]
    shown = cli("show", account, key, "--json", config=config)
    assert shown.returncode == 0, shown.stderr
    story = json.loads(shown.stdout)
    told = [(a["outbox_id"], a["claim"], a["outcome"]) for a in story["attempts"]]
    assert told == [(r["outbox_id"], r["claim"], r["outcome"]) for r in recorded]
    table = cli("show", account, key, config=config)
    assert table.returncode == 0, table.stderr
    for attempt in story["attempts"]:
        assert attempt["outcome"] in table.stdout
