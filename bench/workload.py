"""The invoices a run works on: one template payload, made unique per row by its number.

Rows are bulk-loaded in SQL (``INSERT ... SELECT generate_series``) so a million pending rows take
seconds, not the minutes a client loop would; the numbers differ so the BillClap sandbox (which
refuses a repeated number per firm) creates every one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

ACCOUNT = "bench"


def invoice(number: str) -> dict[str, Any]:
    """A small, valid canonical invoice (the shape of ``tests.factories.invoice``)."""
    return {
        "type": "invoice",
        "number": number,
        "issue_date": "2026-07-01",
        "currency": "INR",
        "customer": {"name": "Acme Traders", "phone": "+919876543210"},
        "lines": [
            {"name": "Consulting Service", "quantity": 1, "unit_price": 1000, "tax_rate": 18}
        ],
    }


# Rows prefix-1 .. prefix-count; keys equal numbers. The per-row trigger and NOTIFY still run.
BULK_INSERT = """
INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)
SELECT $1, $2 || '-' || i, jsonb_set($3::jsonb, '{number}', to_jsonb($2 || '-' || i))
  FROM generate_series($4::int, $5::int) AS i
"""


async def bulk_load(
    dsn: str, count: int, *, prefix: str, account: str = ACCOUNT, chunk: int = 200_000
) -> None:
    """Insert ``count`` pending rows, in chunks (one transaction each), then ANALYZE, as
    autovacuum would soon after a load this size."""
    template = json.dumps(invoice("template"))
    conn = await asyncpg.connect(dsn)
    try:
        for start in range(1, count + 1, chunk):
            end = min(start + chunk - 1, count)
            await conn.execute(BULK_INSERT, account, prefix, template, start, end)
        await conn.execute("ANALYZE invoice_sync.outbox")
    finally:
        await conn.close()


def write_jsonl(path: Path, count: int, *, prefix: str, account: str = ACCOUNT) -> None:
    """``count`` lines for ``invoice-sync enqueue``."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(1, count + 1):
            key = f"{prefix}-{i}"
            record = {"account": account, "idempotency_key": key, "payload": invoice(key)}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
