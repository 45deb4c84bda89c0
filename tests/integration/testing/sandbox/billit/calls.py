"""How the Billit sandbox tests reach it: the token, a full Greek invoice, the adapter, counts."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from worker.invoice import parse_invoice
from worker.outcome import Outcome, Synced
from worker.providers.base import Attempt
from worker.providers.billit.adapter import Billit
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import SandboxHandle

TOKEN = "billit-test-token-91f2"
INVOICE_ROUTES = ("POST /v1/invoices",)


def invoice(**changes: Any) -> dict[str, Any]:
    """A Greek invoice to a domestic business, paid in full: every canonical field Billit maps."""
    doc: dict[str, Any] = {
        "type": "invoice",
        "number": "WEB-1",
        "issue_date": "2026-07-01",
        "due_date": "2026-07-15",
        "currency": "EUR",
        "customer": {
            "name": "Acme AE",
            "phone": "+30 210 1234567",
            "email": "ap@acme.example",
            "tax_id": "EL 123456789",
            "address": {
                "street": "Ermou 1",
                "city": "Athens",
                "postal_code": "10563",
                "country": "GR",
            },
        },
        "lines": [
            {
                "name": "Consulting",
                "description": "July retainer",
                "quantity": 2,
                "unit_price": 100,
                "tax_rate": 24,
                "price_includes_tax": False,
                "discount": 10,
                "discount_type": "percent",
            },
            {
                "name": "Book",
                "quantity": 1,
                "unit_price": "11.30",
                "tax_rate": 6,
                "discount": "0.70",
                "discount_type": "amount",
            },
        ],
        "charges": [{"name": "Shipping", "amount": 5, "tax_rate": 24}],
        "amount_paid": "240.00",
    }
    doc.update(copy.deepcopy(changes))
    return doc


def attempt_for(
    doc: dict[str, Any],
    *,
    key: str = "key-1",
    outbox_id: int = 1,
    prior_unknown: bool = False,
    send_by: float | None = None,
    since: datetime | None = None,
) -> Attempt:
    return Attempt(
        outbox_id=outbox_id,
        account="athens",
        idempotency_key=key,
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
        send_by=send_by,
        since=since,
    )


async def send(adapter: Billit, doc: dict[str, Any], **kwargs: Any) -> Outcome:
    return await adapter.create_invoice(attempt_for(doc, **kwargs))


def requests(sandbox: SandboxHandle, route: str) -> int:
    return sum(sandbox.state.stats.requests.get(route, {}).values())


def created(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return books_of(sandbox.app).created()


async def warm(adapter: Billit) -> None:
    """One invoice through, so the account and the customer are cached and the next attempt's
    only request is the create itself."""
    assert isinstance(await send(adapter, invoice(), key="warm", outbox_id=99), Synced)
