"""The real Refrens adapter creates invoices in the sandbox as sent, provider_options included."""

from __future__ import annotations

from typing import Any

from tests.integration.testing.sandbox.refrens.calls import (
    INVOICES,
    created,
    invoice,
    requests,
    send,
)
from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, Reason, Synced
from worker.providers.refrens.adapter import build_request
from worker.testing.sandbox.refrens.app import books_of
from worker.testing.sandbox.server import SandboxHandle


async def test_happy_path_stores_every_field(sandbox: SandboxHandle, connect: Any) -> None:
    options = {
        "billedTo": {"panNumber": "ABCDE1234F"},
        "email": {"to": {"name": "AP", "email": "ap@acme.example"}, "cc": []},
        "contact": {"email": "billing@seller.example", "phone": "+91 80 1234 5678"},
    }
    doc = invoice(
        "WEB-1",
        due_date="2026-07-15",
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
            },
            {
                "name": "Notebook",
                "quantity": 3,
                "unit_price": "45.50",
                "tax_rate": 12,
                "price_includes_tax": False,
            },
        ],
        charges=[{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}],
        provider_options=options,
    )
    outcome = await send(connect(), doc)
    assert isinstance(outcome, Synced), outcome
    (record,) = created(sandbox)
    assert outcome.provider_invoice_id == record["_id"]
    assert outcome.invoice_number == "WEB-1" == record["invoiceNumber"]
    assert outcome.link == record["share"]["link"]
    assert outcome.pdf_url == record["share"]["pdf"]
    assert outcome.recovered is False
    assert record["request"] == build_request(parse_invoice(doc))
    assert record["billedTo"] == {
        "name": "Acme Traders",
        "street": "123 MG Road",
        "city": "Bengaluru",
        "pincode": "560001",
        "gstState": "29",
        "state": "Karnataka",
        "country": "IN",
        "panNumber": "ABCDE1234F",
        "gstin": "29ABCDE1234F1Z5",
        "phone": "+91 98765 43210",
        "email": "ap@acme.example",
    }
    assert (record["invoiceDate"], record["dueDate"]) == (
        "2026-07-01T00:00:00.000Z",
        "2026-07-15T00:00:00.000Z",
    )
    assert (record["billType"], record["currency"], record["status"]) == (
        "INVOICE",
        "INR",
        "UNPAID",
    )
    assert record["contact"] == options["contact"]
    items = [
        (i["name"], i["rate"], i["quantity"], i.get("gstRate"), i.get("hsn"))
        for i in record["items"]
    ]
    assert items == [
        ("Consulting Service", 950, 2, 18, "998314"),
        ("Notebook", 45.5, 3, 12, None),
        ("Packaging", 50, 1, 18, "9985"),
    ]
    assert record["items"][0]["description"] == "July retainer"
    # 1900 + 18% = 2242; 136.50 + 12% = 152.88; 50 + 18% = 59.
    assert record["finalTotal"] == {
        "total": 2453.88,
        "amount": 2086.5,
        "subTotal": 2086.5,
        "igst": 367.38,
        "cgst": 183.69,
        "sgst": 183.69,
        "discount": 0,
    }
    assert record["igst"] is False
    assert books_of(sandbox.app).emails == [{"invoice": record["_id"], "email": options["email"]}]


async def test_tax_inclusive_prices_and_invoice_discount_total_right(
    sandbox: SandboxHandle, connect: Any
) -> None:
    doc = invoice(
        "WEB-2", charges=[{"name": "Packaging", "amount": 50, "tax_rate": 18}], discount=9
    )
    assert isinstance(await send(connect(), doc), Synced)
    # 1000 incl. 18% + 59 of packaging - 9 = 1050, to the paisa.
    assert created(sandbox)[0]["finalTotal"]["total"] == 1050


async def test_only_the_bearer_header_is_sent(sandbox: SandboxHandle, connect: Any) -> None:
    await send(connect(), invoice())
    stats = sandbox.state.stats.as_dict()
    assert stats["auth_headers"] == {"authorization": 1}
    assert stats["requests"] == {f"POST {INVOICES}": {"200": 1}}


async def test_create_status_201_is_synced_too(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"create_status": 201})
    assert isinstance(await send(connect(), invoice()), Synced)


async def test_options_naming_an_owned_field_are_refused_unsent(
    sandbox: SandboxHandle, connect: Any
) -> None:
    outcome = await send(connect(), invoice(provider_options={"invoiceNumber": None}))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.INVALID_PAYLOAD
    assert outcome.error.startswith("provider_options.invoiceNumber:")
    assert created(sandbox) == []
    assert requests(sandbox) == {}


async def test_options_adding_a_field_are_sent(sandbox: SandboxHandle, connect: Any) -> None:
    mail = {"to": {"name": "AP", "email": "ap@acme.example"}}
    outcome = await send(connect(), invoice(provider_options={"email": mail}))
    assert isinstance(outcome, Synced), outcome
    assert len(created(sandbox)) == 1
