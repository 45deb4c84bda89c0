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


def full_invoice(number: str | None = "FULL-1") -> dict[str, Any]:
    """An invoice that sets every canonical field, with values every provider can take: the
    tax rates 0, 5, 12 and 18, a customer with a full address, a charge, a discount, a partial
    payment below any provider's computed total."""
    return invoice(
        number,
        due_date="2026-07-15",
        customer={
            "id": None,
            "name": "Acme Traders",
            "phone": "+919876543210",
            "email": "ap@acme.example",
            "tax_id": "29ABCDE1234F1Z5",
            "address": {
                "street": "123 MG Road",
                "city": "Bengaluru",
                "state": "Karnataka",
                "postal_code": "560001",
                "country": "IN",
            },
        },
        cash_sale=False,
        lines=[
            {
                "name": "Consulting Service",
                "description": "July retainer",
                "quantity": 2,
                "unit_price": 1000,
                "tax_rate": 18,
                "price_includes_tax": False,
                "hsn": "998314",
                "discount": 5,
                "discount_type": "percent",
                "product_id": None,
            },
            {"name": "Notebook", "quantity": 3, "unit_price": "45.50", "tax_rate": 12},
            {"name": "Rice 5kg", "quantity": 1, "unit_price": 320, "tax_rate": 5},
            {"name": "Training voucher", "quantity": 1, "unit_price": 500, "tax_rate": 0},
        ],
        charges=[{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}],
        discount=10,
        amount_paid=100,
        notes="Thank you for your business",
    )
