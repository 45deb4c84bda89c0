"""A provider's answer holding what the tables cannot take is written changed, and never keeps
the other rows' outcomes out: ``\\u0000`` or a lone ``\\ud800`` (PostgreSQL's text refuses
them) as U+FFFD, and an id or link too long for the synced table's indexes cut, ending in "…".

The answers come from a real aiohttp app on loopback, read by the real BillClap adapter: the
escapes are valid JSON, so the adapter decodes them into its outcome (the id, the message, the
kept answer) as a provider's text; what is stored is what must not choke on them. Before the
fix, every flush holding such a row failed (``unsupported Unicode escape sequence``, ``index
row requires 20016 bytes``) and was tried again for ever, and the engine's drain never ended.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets

import asyncpg
from aiohttp import web

from tests.edges import Handler, adapter_for, serve
from tests.factories import enqueue, invoice, table_count
from tests.fakes import fast_settings
from worker.config import HttpSettings
from worker.durations import parse_rate
from worker.engine.limits import AccountGate
from worker.engine.loop import Engine
from worker.engine.runtimes import AccountRuntime
from worker.policy import ID_LIMIT, LINK_LIMIT
from worker.store.outbox import Outbox
from worker.testing.sandbox import PROFILES

PROFILE = PROFILES["billclap"]
# Raw JSON text: a NUL in the id, a lone surrogate in a link, both in a kept field and a key.
SYNCED = (
    '{"status": true, "invoice_id": "inv-\\u0000-%d", "link": "https://x/\\ud800",'
    ' "note": "a\\u0000b", "k\\u0000": 1}'
)
# BillClap's errors arrive in HTTP 500 bodies; the message is kept in the error texts.
REJECTED = '{"status": false, "error": "Party\\u0000 detail \\udfff is required"}'


def billclap(url: str) -> AccountRuntime:
    """An account on the real BillClap adapter, sending to ``url``."""
    return AccountRuntime(
        name="shop",
        provider_name="billclap",
        provider=adapter_for(PROFILE, url, token=PROFILE.token),
        gate=AccountGate(rate=parse_rate("1000/second"), concurrency=2),
        request_timeout=HttpSettings().request_timeout,
    )


async def drain_against(pool: asyncpg.Pool, answer: Handler) -> None:
    """Run the engine to a drain, its one account on BillClap's adapter, ``answer`` answering."""
    async with serve(answer) as url:
        engine = Engine(
            outbox=Outbox(pool, worker_id="test"),
            runtimes={"shop": billclap(url)},
            settings=fast_settings(),
            listen_dsn=None,
            rand=lambda: 1.0,
        )
        await asyncio.wait_for(engine.run(drain=True), 20)


async def test_unstorable_characters_are_replaced_and_every_outcome_is_written(
    pool: asyncpg.Pool,
) -> None:
    numbers = itertools.count(1)

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        if "reject" in json.dumps(body):
            return web.Response(status=500, text=REJECTED, content_type="application/json")
        return web.Response(text=SYNCED % next(numbers), content_type="application/json")

    for i in range(3):
        await enqueue(pool, "shop", f"ok-{i}", invoice(number=f"ok-{i}"))
    await enqueue(pool, "shop", "bad", invoice(number="reject-1"))
    await drain_against(pool, answer)

    assert await table_count(pool, "outbox") == 0
    synced = await pool.fetch(
        "SELECT provider_invoice_id, link, response FROM invoice_sync.synced ORDER BY outbox_id"
    )
    assert len(synced) == 3
    for row in synced:
        assert row["provider_invoice_id"].startswith("inv-\ufffd-")
        assert row["link"] == "https://x/\ufffd"
        assert json.loads(row["response"])["note"] == "a\ufffdb"
        assert "k\ufffd" in json.loads(row["response"])
    dead = await pool.fetchrow("SELECT reason, error FROM invoice_sync.dead_letter")
    assert "Party\ufffd detail \ufffd is required" in dead["error"]
    # Each attempt has its row in the history too (the rejected one was retried first: an
    # unknown message in a 500 is a server failure to BillClap's adapter).
    history = await pool.fetch(
        "SELECT idempotency_key, outcome, error FROM invoice_sync.attempt ORDER BY attempt"
    )
    assert sum(row["outcome"] == "synced" for row in history) == 3
    bad = [row for row in history if row["idempotency_key"] == "bad"]
    assert bad[-1]["outcome"] == "dead_letter"
    assert all("\ufffd" in row["error"] for row in bad)


async def test_an_id_too_long_to_index_is_cut_and_every_outcome_is_written(
    pool: asyncpg.Pool,
) -> None:
    # 20,000 characters that do not compress: past what a btree index entry can hold.
    huge_id = secrets.token_hex(10_000)

    async def answer(request: web.Request) -> web.Response:
        body = {"status": True, "invoice_id": huge_id, "link": "https://x/" + "l" * 100_000}
        return web.json_response(body)

    for i in range(3):
        await enqueue(pool, "shop", f"ok-{i}", invoice(number=f"ok-{i}"))
    await drain_against(pool, answer)

    assert await table_count(pool, "outbox") == 0
    rows = await pool.fetch("SELECT provider_invoice_id, link FROM invoice_sync.synced")
    assert len(rows) == 3
    for row in rows:
        assert row["provider_invoice_id"] == huge_id[:ID_LIMIT] + "\u2026"
        assert len(row["link"]) == LINK_LIMIT + 1


async def test_an_answer_nested_thousands_deep_is_read_as_text_and_stops_nothing(
    pool: asyncpg.Pool,
) -> None:
    # 1.2 KB of valid JSON, 600 arrays deep, beside a success's id: the flush's encoding of the
    # kept answer overflowed Python's stack, the flusher crashed six times and the worker
    # stopped with none of the three outcomes written.
    deep = "[" * 600 + "]" * 600
    answered: set[str] = set()

    async def answer(request: web.Request) -> web.Response:
        number = (await request.json())["invoice_number"]
        body = '{"status": true, "invoice_id": "inv-%s", "x": %s}'
        if number == "deep-1" and number not in answered:
            answered.add(number)
            return web.Response(text=body % (number, deep), content_type="application/json")
        return web.Response(text=body % (number, "[]"), content_type="application/json")

    for number in ("ok-1", "deep-1", "ok-2"):
        await enqueue(pool, "shop", number, invoice(number=number))
    await drain_against(pool, answer)

    assert await table_count(pool, "outbox") == 0
    synced = await pool.fetch(
        "SELECT idempotency_key, provider_invoice_id FROM invoice_sync.synced"
    )
    assert {row["idempotency_key"]: row["provider_invoice_id"] for row in synced} == {
        "ok-1": "inv-ok-1",
        "deep-1": "inv-deep-1",
        "ok-2": "inv-ok-2",
    }
    # The deep answer could not be read: its outcome was unknown, and the second attempt (a
    # numbered invoice: safe to send again) found a readable one.
    history = await pool.fetch(
        "SELECT outcome, outcome_unknown FROM invoice_sync.attempt"
        " WHERE idempotency_key = 'deep-1' ORDER BY attempt"
    )
    assert [(row["outcome"], row["outcome_unknown"]) for row in history] == [
        ("retry", True),
        ("synced", False),
    ]
