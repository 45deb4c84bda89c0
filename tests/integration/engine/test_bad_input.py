"""Hostile input at both doors: ``enqueue`` (the library behind the CLI) and the engine, fed rows
a producer wrote straight into the outbox with ``invoice_sync.enqueue()``.

Each bad record must be refused with a clear, bounded, one-line message (enqueue: by line
number; engine: dead-lettered ``invalid_payload``, never sent), and nothing else may be
disturbed: the good records around it load and sync.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import invoice
from tests.fakes import ScriptedProvider, fast_settings, runtime
from tests.hostile import bad_line, bad_payload, good_payload
from worker.cli.enqueue_blocks import enqueue_lines
from worker.engine.loop import Engine
from worker.store.outbox import Outbox

HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # each example empties the tables first
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
MAX_MESSAGE = 1000
TABLES = "invoice_sync.outbox, invoice_sync.synced, invoice_sync.dead_letter"


@st.composite
def mixed_lines(draw: st.DrawFn) -> list[tuple[bool, str]]:
    """(good?, line) in a random order; every key is distinct."""
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=12))
    lines = []
    for i, good in enumerate(kinds):
        key = f"{'good' if good else 'bad'}-{i}"
        if good:
            payload = draw(good_payload(number=key))
            record = {"account": "shop", "idempotency_key": key, "payload": payload}
            lines.append((True, json.dumps(record)))
        else:
            lines.append((False, draw(bad_line(key))))
    return lines


@HYPOTHESIS
@given(lines=mixed_lines())
async def test_enqueue_refuses_each_bad_line_by_number_and_loads_every_good_one(
    pool: asyncpg.Pool, lines: list[tuple[bool, str]]
) -> None:
    await pool.execute(f"TRUNCATE {TABLES}")
    report = await enqueue_lines(
        [text for _good, text in lines],
        Outbox(pool, worker_id="test"),
        accounts=frozenset({"shop"}),
    )
    bad_numbers = [n for n, (good, _text) in enumerate(lines, start=1) if not good]
    assert [n for n, _message in report.bad] == bad_numbers
    for _number, message in report.bad:
        assert message
        assert "\n" not in message
        assert len(message) <= MAX_MESSAGE
    good_keys = {json.loads(text)["idempotency_key"] for good, text in lines if good}
    assert report.loaded == len(good_keys)
    stored = {r["idempotency_key"] for r in await pool.fetch("SELECT * FROM invoice_sync.outbox")}
    assert stored == good_keys


@settings(HYPOTHESIS, max_examples=25)  # each example runs the engine to a drain
@given(payloads=st.lists(bad_payload(), min_size=1, max_size=5))
async def test_engine_dead_letters_hostile_rows_unsent_and_syncs_the_rest(
    pool: asyncpg.Pool, payloads: list[str]
) -> None:
    await pool.execute(f"TRUNCATE {TABLES}")
    stored, refused = set(), set()
    for i, text in enumerate(payloads):
        key = f"bad-{i}"
        try:
            await pool.fetchval("SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)", key, text)
            stored.add(key)
        except asyncpg.PostgresError:
            # jsonb refuses what is not JSON to PostgreSQL (NaN, \u0000): an error, no row.
            refused.add(key)
    in_outbox = {
        r["idempotency_key"] for r in await pool.fetch("SELECT * FROM invoice_sync.outbox")
    }
    assert in_outbox == stored
    assert len(stored) + len(refused) == len(payloads)
    for key in ("good-1", "good-2"):
        await pool.execute(
            "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)",
            key,
            json.dumps(invoice(number=key)),
        )

    provider = ScriptedProvider()
    engine = Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={"shop": runtime(provider)},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )
    await asyncio.wait_for(engine.run(drain=True), 30)

    assert sorted(a.idempotency_key for a in provider.calls) == ["good-1", "good-2"]
    synced = {r["idempotency_key"] for r in await pool.fetch("SELECT * FROM invoice_sync.synced")}
    assert synced == {"good-1", "good-2"}
    dead = await pool.fetch("SELECT idempotency_key, reason, error FROM invoice_sync.dead_letter")
    assert {r["idempotency_key"] for r in dead} == stored
    for row in dead:
        assert row["reason"] == "invalid_payload"
        assert row["error"]
        assert len(row["error"]) <= MAX_MESSAGE, row["error"][:200]
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
