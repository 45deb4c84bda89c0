"""How the Refrens sandbox tests reach it: token, app secret, the invoice, the adapter, counts."""

from __future__ import annotations

import copy
from typing import Any

from tests import factories
from worker.invoice import parse_invoice
from worker.outcome import Outcome
from worker.providers.base import Attempt
from worker.providers.refrens.adapter import Refrens
from worker.providers.refrens.auth import AppSecretLogin
from worker.testing.sandbox.refrens.app import books_of
from worker.testing.sandbox.server import SandboxHandle

TOKEN = "static-refrens-token"
APP_ID, APP_SECRET = "acme-app", "acme-app-secret-value"
URL_KEY = "acme-traders"
INVOICES = f"/businesses/{URL_KEY}/invoices"
CUSTOMER = {
    "name": "Acme Traders",
    "phone": "+91 98765 43210",
    "email": "ap@acme.example",
    "tax_id": "29ABCDE1234F1Z5",
    "address": {
        "street": "123 MG Road",
        "city": "Bengaluru",
        "state": "Karnataka",
        "postal_code": "560001",
        "country": "IN",
    },
}


def invoice(number: str | None = "WEB-1", **changes: Any) -> dict[str, Any]:
    return factories.invoice(number, **({"customer": CUSTOMER} | copy.deepcopy(changes)))


def attempt_for(doc: dict[str, Any], *, prior_unknown: bool = False) -> Attempt:
    return Attempt(
        outbox_id=7,
        account="acme",
        idempotency_key="key-7",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
    )


def login(connect: Any, **options: Any) -> Refrens:
    adapter: Refrens = connect(token=None, app_id=APP_ID, app_secret=APP_SECRET, **options)
    return adapter


def logins(adapter: Refrens) -> int:
    assert isinstance(adapter.bearer, AppSecretLogin)
    return adapter.bearer.logins


async def send(adapter: Refrens, doc: dict[str, Any], *, prior_unknown: bool = False) -> Outcome:
    return await adapter.create_invoice(attempt_for(doc, prior_unknown=prior_unknown))


def created(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return books_of(sandbox.app).created()


def requests(sandbox: SandboxHandle) -> dict[str, dict[str, int]]:
    return sandbox.state.stats.requests
