"""cancel() racing the claim, 1,000 times: a row is enqueued, a running daemon (woken by the
insert's NOTIFY) claims it while another connection cancels it a moment later. A cancelled
invoice never reaches the provider, and every key ends in exactly one final table."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.daemons import daemons, wait_until_drained
from tests.e2e.processes import TOKEN, get_json, sandbox, write_config
from tests.e2e.test_billclap_drain import account
from tests.factories import invoice

pytestmark = pytest.mark.e2e

RACES = 1000
CANCELLERS = 4  # connections racing at once, each its own enqueue-then-cancel loop


async def race(dsn: str, keys: list[str], seed: int) -> dict[str, str]:
    """Enqueue each key, wait 0-40 ms (the daemon's claim lands somewhere in that window),
    cancel it; cancel()'s answer per key."""
    chance = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    answers = {}
    try:
        for key in keys:
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)",
                key,
                json.dumps(invoice(number=key)),
            )
            await asyncio.sleep(chance.uniform(0, 0.04))
            answers[key] = await conn.fetchval(
                "SELECT invoice_sync.cancel('shop', $1, 'race')", key
            )
    finally:
        await conn.close()
    return answers


async def final_tables(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT 'synced' AS t, idempotency_key FROM invoice_sync.synced UNION ALL"
            " SELECT 'dead', idempotency_key FROM invoice_sync.dead_letter UNION ALL"
            " SELECT 'cancelled', idempotency_key FROM invoice_sync.cancelled UNION ALL"
            " SELECT 'outbox', idempotency_key FROM invoice_sync.outbox"
        )
    finally:
        await conn.close()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["idempotency_key"], []).append(row["t"])
    return found


async def test_a_cancel_racing_a_claim_never_sends_and_never_loses_a_row(
    dsn: str, tmp_path: Path
) -> None:
    # A slow provider keeps attempts in flight while their rows are cancelled.
    with sandbox("billclap", "--token", TOKEN, "--latency", "0.2") as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url), poll_interval='"50ms"')
        with daemons(config, 2, tmp_path / "logs"):
            keys = [f"R-{i}" for i in range(RACES)]
            shares = [keys[n::CANCELLERS] for n in range(CANCELLERS)]
            answers: dict[str, str] = {}
            for part in await asyncio.gather(*(race(dsn, s, n) for n, s in enumerate(shares))):
                answers.update(part)
            await wait_until_drained(dsn, within=120)
        created = get_json(url + "/_sandbox/created")["created"]

    tables = await final_tables(dsn)
    sent = {record["invoice_number"] for record in created}
    assert set(tables) == set(keys)
    assert {key: places for key, places in tables.items() if len(places) != 1} == {}
    cancelled = {key for key, [place] in tables.items() if place == "cancelled"}
    assert cancelled == {key for key, answer in answers.items() if answer == "cancelled"}
    assert cancelled.isdisjoint(sent)  # never sent, by any replica
    for key, answer in answers.items():
        if answer != "cancelled":
            assert tables[key] == ["synced"], (key, answer)
    # Both sides of the race happened often enough for it to mean something.
    by_answer = {a: sum(1 for v in answers.values() if v == a) for a in set(answers.values())}
    print("cancel answers:", by_answer, "sent:", len(sent))  # the figures, with -s
    assert by_answer.get("cancelled", 0) >= 50, by_answer
    assert by_answer.get("in_flight", 0) + by_answer.get("synced", 0) >= 50, by_answer
