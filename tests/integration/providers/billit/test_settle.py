"""A batch of Billit creates whose answers were lost, settled by other workers: the engine with the
real adapter against the Billit sandbox, and a real PostgreSQL.

The flash sale: 40 invoices to one customer with one product, so every recent invoice could be
any row's. Their creates commit at Billit and stall past the client's timeout (the outcome is
unknown); then two fresh workers, as after the first one's kill -9, take the rows again. Each
row's tag scan must find its own invoice among 40 look-alikes: every row synced as recovered,
no second invoice, no ``ambiguous``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import asyncpg

from tests.factories import table_count
from tests.fakes import fast_settings
from worker.durations import parse_rate
from worker.engine.limits import AccountGate
from worker.engine.loop import Engine
from worker.engine.runtimes import AccountRuntime
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billit.adapter import Billit
from worker.providers.billit.options import BillitOptions
from worker.store.outbox import Outbox
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

TOKEN = "billit-settle-token-5c1d"
TIMEOUT = 0.5
SALE = 40


def flash_sale(number: str, price: str = "19.90") -> dict[str, Any]:
    return {
        "type": "invoice",
        "number": number,
        "issue_date": "2026-07-01",
        "currency": "EUR",
        "customer": {"name": "Acme AE", "tax_id": "EL 123456789", "address": {"country": "GR"}},
        "lines": [
            {"name": "Flash sale kettle", "quantity": 1, "unit_price": price, "tax_rate": 24}
        ],
    }


def worker(pool: asyncpg.Pool, sandbox: SandboxHandle, name: str, **settings: Any) -> Engine:
    """One replica: its own adapter (nothing cached) and worker id, Billit at 10 a second."""
    adapter = Billit(
        Credentials(base_url=sandbox.url + "/v1", token=TOKEN),
        HttpTimeouts(connect=1.0, total=TIMEOUT),
        BillitOptions(invoice_type_id=1),
    )
    runtime = AccountRuntime(
        name="athens",
        provider_name="billit",
        provider=adapter,
        gate=AccountGate(rate=parse_rate("10/second"), concurrency=8),
        request_timeout=TIMEOUT,
    )
    return Engine(
        outbox=Outbox(pool, worker_id=name),
        runtimes={"athens": runtime},
        settings=fast_settings(**settings),
        listen_dsn=None,
        rand=lambda: 1.0,
    )


async def enqueue(pool: asyncpg.Pool, key: str, payload: dict[str, Any]) -> None:
    await pool.execute(
        "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)", "athens", key, json.dumps(payload)
    )


async def until(pool: asyncpg.Pool, query: str, wanted: int, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while await pool.fetchval(query) != wanted:
            await asyncio.sleep(0.05)


async def test_forty_look_alikes_whose_creates_stalled_all_settle_as_synced(
    pool: asyncpg.Pool,
) -> None:
    sandbox = await start_sandbox("billit", tokens=[TOKEN], rate_limit_per_minute=None)
    try:
        # The first replica caches the account and the customer on a sale of another price,
        # then every create of the flash sale commits and stalls past its timeout.
        first = worker(pool, sandbox, "first", base_retry_delay=60, max_retry_delay=60)
        await enqueue(pool, "warm", flash_sale("W-1", price="5.00"))
        await asyncio.wait_for(first.run(drain=True), 20)
        sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 3}})
        for i in range(SALE):
            await enqueue(pool, f"sale-{i}", flash_sale(f"FS-{i}"))
        running = asyncio.create_task(first.run())
        unknown = "SELECT count(*) FROM invoice_sync.outbox WHERE outcome_unknown"
        await until(pool, unknown, SALE, 30)
        # The claim marks a row unknown before its request goes out: wait until every stalled
        # create has reached the sandbox, so the kill lands on calls already made.
        for _ in range(300):
            if len(books_of(sandbox.app).created()) == SALE + 1:
                break
            await asyncio.sleep(0.05)
        first.force()  # as good as kill -9: every row is leased back as unknown
        await running
        assert len(books_of(sandbox.app).created()) == SALE + 1

        # Two fresh replicas take the rows again once their retry is due.
        sandbox.state.change({"faults": {"stall_rate": 0}})
        await pool.execute("UPDATE invoice_sync.outbox SET available_at = now()")
        replicas = [worker(pool, sandbox, name) for name in ("second", "third")]
        await asyncio.wait_for(asyncio.gather(*(r.run(drain=True) for r in replicas)), 60)
    finally:
        await sandbox.stop()

    dead = await pool.fetch("SELECT idempotency_key, reason, error FROM invoice_sync.dead_letter")
    assert [dict(row) for row in dead] == []
    synced = await pool.fetch(
        "SELECT idempotency_key, provider_invoice_id, recovered FROM invoice_sync.synced"
    )
    sale = {r["idempotency_key"]: r for r in synced if r["idempotency_key"] != "warm"}
    assert len(sale) == SALE
    assert all(row["recovered"] for row in sale.values())
    assert await table_count(pool, "outbox") == 0
    created = books_of(sandbox.app).created()
    assert len(created) == SALE + 1  # the warm-up and the sale: no second invoice
    tags = Counter(tag for record in created for tag in record["tags"])
    assert all(count == 1 for count in tags.values())
    by_uuid = {record["uuid"]: record for record in created}
    for key, row in sale.items():
        assert f"invoice-sync:{key}" in by_uuid[row["provider_invoice_id"]]["tags"]
    assert {
        Decimal(str(by_uuid[r["provider_invoice_id"]]["finalAmount"])) for r in sale.values()
    } == {Decimal("19.90")}
