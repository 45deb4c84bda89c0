"""Test data: canonical invoices and outbox rows."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


def invoice(number: str | None = "WEB-1", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "invoice",
        "number": number,
        "issue_date": "2026-07-01",
        "currency": "INR",
        "customer": {"name": "Acme Traders", "phone": "+919876543210"},
        "lines": [
            {"name": "Consulting Service", "quantity": 1, "unit_price": 1000, "tax_rate": 18}
        ],
    }
    if number is None:
        del doc["number"]
    doc.update(overrides)
    return doc


async def enqueue(
    pool: asyncpg.Pool, account: str, key: str, payload: dict[str, Any] | str | None = None
) -> int:
    body = payload if isinstance(payload, str) else json.dumps(payload or invoice(number=key))
    row_id: int = await pool.fetchval(
        "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)", account, key, body
    )
    return row_id


async def table_count(pool: asyncpg.Pool, table: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM invoice_sync.{table}")
    return count
