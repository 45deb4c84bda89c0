"""How the BillClap sandbox tests reach it: tokens, the test invoice, the adapter, raw HTTP."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp

from tests import factories
from worker.invoice import parse_invoice
from worker.outcome import Outcome
from worker.providers.base import Attempt
from worker.providers.billclap.adapter import BillClap

TOKEN = "tok-firm-a"
OTHER = "tok-firm-b"
SESSION = "sandbox-session-token"
EXPIRED = "sandbox-expired-token"


def invoice(number: str | None = "WEB-1", **changes: Any) -> dict[str, Any]:
    """The shared test invoice plus a charge, paid in full (1000 incl. 18% + 50 + 18% = 1059)."""
    base: dict[str, Any] = {
        "charges": [{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}],
        "amount_paid": 1059,
    }
    return factories.invoice(number, **(base | copy.deepcopy(changes)))


def attempt_for(doc: dict[str, Any], *, prior_unknown: bool = False) -> Attempt:
    return Attempt(
        outbox_id=7,
        account="acme",
        idempotency_key="key-7",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
    )


async def send(adapter: BillClap, doc: dict[str, Any], *, prior_unknown: bool = False) -> Outcome:
    return await adapter.create_invoice(attempt_for(doc, prior_unknown=prior_unknown))


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = body if isinstance(body, str) else None
    async with http.post(url, json=None if data else body, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()
