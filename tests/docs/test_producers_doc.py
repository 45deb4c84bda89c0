"""docs/producers.md: its SQL and Python examples run, as a producer login granted its account
by the documented snippet, against a migrated database and write valid invoices; its Node
example passes `node --check`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.logins import apply_roles, login, user_of
from tests.tools import node
from worker.invoice import json_schema, parse_invoice

DOC = Path(__file__).resolve().parents[2] / "docs" / "producers.md"
LINES = [{"name": "Masala Chai", "quantity": 3, "unit_price": 40, "tax_rate": 5}]


def blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def define(source: str) -> dict[str, Any]:
    """Run an example module's top level (imports and definitions only) and return its names."""
    namespace: dict[str, Any] = {"__name__": "producers_doc_example"}
    exec(compile(source, str(DOC), "exec"), namespace)
    return namespace


@pytest.fixture
async def producer(dsn: str) -> AsyncIterator[str]:
    """A producer login in a database that has the application's own ``orders`` table."""
    await apply_roles(dsn)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric);"
            "GRANT SELECT, INSERT ON orders TO invoice_sync_producer"
        )
    finally:
        await admin.close()
    async with login(dsn, "producer") as url:
        admin = await asyncpg.connect(dsn)
        try:  # the documented grant, for this test's login
            await admin.execute(blocks("sql")[0].replace("'shop_web'", f"'{user_of(url)}'"))
        finally:
            await admin.close()
        yield url


def test_the_doc_has_the_examples_this_test_runs() -> None:
    assert len(blocks("sql")) == 6
    assert len(blocks("python")) == 2
    assert len(blocks("js")) == 1


async def outbox_payloads(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT idempotency_key, payload::text FROM invoice_sync.outbox")
    finally:
        await conn.close()
    return {r["idempotency_key"]: json.loads(r["payload"]) for r in rows}


async def test_the_sql_examples_enqueue_with_the_order_and_read_the_result(
    dsn: str, producer: str
) -> None:
    _, enqueue, insert, results, *_ = blocks("sql")
    conn = await asyncpg.connect(producer)
    try:
        await conn.execute(enqueue)
        await conn.execute(insert)
        assert await conn.fetchval("SELECT count(*) FROM orders") == 2
        [row] = await conn.fetch(results)
        assert row["status"] == "pending"
    finally:
        await conn.close()
    payloads = await outbox_payloads(dsn)
    assert set(payloads) == {"order-123", "order-124"}
    for payload in payloads.values():
        parse_invoice(payload)  # the examples are valid canonical invoices

    # The worker's side, done by hand: order-123 becomes an invoice at the provider.
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            "WITH gone AS (DELETE FROM invoice_sync.outbox WHERE idempotency_key = 'order-123'"
            " RETURNING id, account, idempotency_key)"
            " INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
            " provider_invoice_id, invoice_number, link, attempts)"
            " SELECT id, account, idempotency_key, 'billclap', '9001', 'WEB-2026-000123',"
            " 'https://example.invalid/i/9001', 1 FROM gone"
        )
    finally:
        await admin.close()
    conn = await asyncpg.connect(producer)
    try:
        [row] = await conn.fetch(results)
        assert (row["status"], row["provider_invoice_id"]) == ("synced", "9001")
        # Enqueueing a synced key again creates nothing.
        await conn.execute(enqueue.replace("VALUES (123", "VALUES (1123"))
    finally:
        await conn.close()
    assert set(await outbox_payloads(dsn)) == {"order-124"}


async def test_the_result_and_cancel_examples_answer_the_producer(producer: str) -> None:
    _, enqueue, insert, _, result, cancel = blocks("sql")
    conn = await asyncpg.connect(producer)
    try:
        await conn.execute(enqueue)
        await conn.execute(insert)
        row = await conn.fetchrow(result)
        assert (row["state"], row["link"]) == ("pending", None)
        assert await conn.fetchval(cancel) == "cancelled"
        withdrawn = await conn.fetchrow(
            "SELECT state, reason FROM invoice_sync.result('shop-billclap', 'order-124')"
        )
        assert tuple(withdrawn) == ("cancelled", "order cancelled by the customer")
        assert await conn.fetchval(cancel) == "cancelled"  # idempotent
    finally:
        await conn.close()


async def test_the_asyncpg_example_writes_order_and_request_atomically(
    dsn: str, producer: str
) -> None:
    place_order = define(blocks("python")[0])["place_order"]
    conn = await asyncpg.connect(producer)
    try:
        row_id = await place_order(conn, 125, "Chai Co", LINES)
        assert isinstance(row_id, int)
        assert await conn.fetchval("SELECT total FROM orders WHERE id = 125") == 120
        # The order insert fails on a taken id, and the invoice request rolls back with it.
        with pytest.raises(asyncpg.UniqueViolationError):
            await place_order(conn, 125, "Chai Co", LINES)
    finally:
        await conn.close()
    payloads = await outbox_payloads(dsn)
    assert set(payloads) == {"order-125"}
    assert parse_invoice(payloads["order-125"]).number == "WEB-000125"


async def test_the_psycopg_example_writes_order_and_request_atomically(
    dsn: str, producer: str
) -> None:
    place_order_sync = define(blocks("python")[1])["place_order_sync"]
    with psycopg.connect(producer) as conn:
        assert isinstance(place_order_sync(conn, 126, "Chai Co", LINES), int)
        with pytest.raises(psycopg.errors.UniqueViolation):
            place_order_sync(conn, 126, "Chai Co", LINES)
    payloads = await outbox_payloads(dsn)
    assert set(payloads) == {"order-126"}
    parse_invoice(payloads["order-126"])


def test_the_node_example_is_valid_javascript(tmp_path: Path) -> None:
    [source] = blocks("js")
    script = tmp_path / "producer.js"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [str(node()), "--check", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.js"
    broken.write_text(source.replace("async function", "async functio"), encoding="utf-8")
    assert (
        subprocess.run(
            [str(node()), "--check", str(broken)], capture_output=True, check=False
        ).returncode
        != 0
    )


def test_the_documented_fields_are_in_the_json_schema() -> None:
    properties = json_schema()["properties"]
    for field in ("number", "lines", "customer", "cash_sale", "provider_options", "type"):
        assert field in properties
