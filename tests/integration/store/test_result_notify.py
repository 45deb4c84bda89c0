"""NOTIFY invoice_sync_result (migration 010): one small JSON payload per row that reaches a
final state, sent when that commits; skipped and counted while the queue is too full."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from tests.factories import enqueue
from tests.integration.store.test_outbox import claim, store, synced
from worker.claims import Resolution
from worker.store.queries import queries

CHANNEL = "invoice_sync_result"


class Heard:
    """The payloads a LISTEN connection received, in order."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def __call__(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.payloads.append(json.loads(payload))

    async def settle(self) -> list[dict[str, Any]]:
        await asyncio.sleep(0.3)  # delivery is asynchronous; nothing more comes after this
        return sorted(self.payloads, key=lambda p: p["idempotency_key"])


async def listening(dsn: str) -> tuple[asyncpg.Connection, Heard]:
    conn = await asyncpg.connect(dsn)
    heard = Heard()
    await conn.add_listener(CHANNEL, heard)
    return conn, heard


async def test_each_final_state_is_notified_once_when_it_commits(
    dsn: str, pool: asyncpg.Pool
) -> None:
    ids = {key: await enqueue(pool, "shop", key) for key in ("a", "b", "c", "d")}
    listener, heard = await listening(dsn)
    try:
        outbox = store(pool)
        rows = {
            r.idempotency_key: r
            for r in await claim(outbox, {"shop": 3}, lease=60, probe_cooldown=60)
        }
        await outbox.outbox_record(
            [
                synced(rows["a"].id, rows["a"].claim),
                Resolution(
                    id=rows["b"].id,
                    claim=rows["b"].claim,
                    kind="dead",
                    reason="rejected",
                    error="no",
                ),
                Resolution(id=rows["c"].id, claim=rows["c"].claim, kind="retry", delay=60),
            ]
        )
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT invoice_sync.cancel('shop', 'd')")
            await asyncio.sleep(0.2)
            assert heard.payloads[2:] == []  # not before the commit
        assert await heard.settle() == [
            {"account": "shop", "idempotency_key": "a", "state": "synced", "outbox_id": ids["a"]},
            {"account": "shop", "idempotency_key": "b", "state": "dead", "outbox_id": ids["b"]},
            {
                "account": "shop",
                "idempotency_key": "d",
                "state": "cancelled",
                "outbox_id": ids["d"],
            },
        ]
    finally:
        await listener.close()


async def test_a_rolled_back_outcome_is_not_notified(dsn: str, pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "a")
    listener, heard = await listening(dsn)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            assert await conn.fetchval("SELECT invoice_sync.cancel('shop', 'a')") == "cancelled"
            await transaction.rollback()
        assert await heard.settle() == []
    finally:
        await listener.close()


async def test_over_the_queue_limit_notifications_are_skipped_and_counted(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """The flush commits all the same; the count is what `status` shows."""
    for key in ("a", "b", "c"):
        await enqueue(pool, "shop", key)
    listener, heard = await listening(dsn)
    try:
        async with pool.acquire() as conn:
            # Any usage is over a negative share: the path a full queue takes, without filling it.
            await conn.execute("SET invoice_sync.result_notify_max_usage = '-1'")
            outbox = store(pool)
            rows = await claim(outbox, {"shop": 2}, lease=60, probe_cooldown=60)
            body = json.dumps([synced(r.id, r.claim).as_record() for r in rows])
            applied = await conn.fetchrow(queries()["outbox_record"], outbox.worker_id, body)
            assert applied["synced"] == 2
            await conn.execute("RESET invoice_sync.result_notify_max_usage")
            assert await conn.fetchval("SELECT invoice_sync.cancel('shop', 'c')") == "cancelled"
        skipped = await pool.fetchval(queries()["result_notify_skipped"])
        assert skipped == 2
        assert [p["idempotency_key"] for p in await heard.settle()] == ["c"]
    finally:
        await listener.close()
