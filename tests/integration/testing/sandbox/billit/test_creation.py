"""The real Billit adapter creates invoices in the sandbox with every field it maps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.integration.testing.sandbox.billit.calls import created, invoice, requests, send
from worker.invoice import parse_invoice
from worker.outcome import Synced
from worker.providers.billit.mapping import gross_total
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import SandboxHandle


async def test_happy_path_stores_every_field(sandbox: SandboxHandle, connect: Any) -> None:
    outcome = await send(connect(), invoice(), key="order-77")
    assert isinstance(outcome, Synced), outcome
    (record,) = created(sandbox)
    assert outcome.provider_invoice_id == record["uuid"]
    assert outcome.invoice_number == "A-1" == record["invoice_number"]
    assert outcome.link == record["permalink"]
    assert outcome.pdf_url == record["permalink"] + "/pdf"
    assert not outcome.recovered
    (customer,) = books_of(sandbox.app).ledger.customers.values()
    assert customer == {
        "id": customer["id"],
        "isCompany": True,
        "company": "Acme AE",
        "customerType": 1,
        "country": "GR",
        "vatId": "EL 123456789",
        "streetAddress": "Ermou 1",
        "postalCode": "10563",
        "city": "Athens",
        "phone": "+30 210 1234567",
        "email": "ap@acme.example",
    }
    assert record["request"] == {
        "invoiceDate": "2026-07-01",
        "invoiceTypeId": 1,
        "dateExpires": "2026-07-15",
        "customerId": customer["id"],
        "billerId": 1,
        "products": [
            {
                "details": "Consulting\nJuly retainer",
                "vatId": 1,
                "price": 100,
                "quantity": 2,
                "discount": 10,
            },
            # 11.30 - 0.70 incl. 6% VAT = 10.00 net.
            {"details": "Book", "vatId": 3, "price": 10, "quantity": 1},
            {"details": "Shipping", "vatId": 1, "price": 5, "quantity": 1},
        ],
        "isPaid": True,
        "paymentMethod": [1],
        "tags": ["invoice-sync:order-77"],
        "sendMail": False,
    }
    # 180 + 43.20 VAT, 10 + 0.60, 5 + 1.20: Billit's total is the one we computed.
    assert record["finalAmount"] == 240.0 == float(gross_total(parse_invoice(invoice())))
    assert record["tags"] == ["invoice-sync:order-77"]


async def test_base_url_with_or_without_v1(sandbox: SandboxHandle, connect: Any) -> None:
    for base in (sandbox.url, sandbox.url + "/v1/"):
        assert isinstance(await send(connect(base=base), invoice()), Synced)
    assert len(created(sandbox)) == 2


async def test_options_reach_the_body(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = connect(payment_method_id=2, measurement_unit=1, send_mail=True)
    doc = invoice(provider_options={"mydataInvoiceType": "1.1"})
    assert isinstance(await send(adapter, doc), Synced)
    body = created(sandbox)[0]["request"]
    assert (body["paymentMethod"], body["sendMail"], body["mydataInvoiceType"]) == (
        [2],
        True,
        "1.1",
    )
    assert {row["measurementUnit"] for row in body["products"]} == {1}


async def test_series_number_per_invoice_type(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = connect(invoice_type_ids={"credit_note": 2})
    numbers = []
    for kind in ("invoice", "credit_note", "invoice"):
        outcome = await send(adapter, invoice(type=kind))
        assert isinstance(outcome, Synced), outcome
        numbers.append(outcome.invoice_number)
    assert numbers == ["A-1", "CN-1", "A-2"]


async def test_cash_sale_on_a_retail_type_needs_no_customer(
    sandbox: SandboxHandle, connect: Any
) -> None:
    doc = invoice(customer=None, cash_sale=True, provider_options={"invoiceTypeId": 3})
    outcome = await send(connect(), doc)
    assert isinstance(outcome, Synced), outcome
    assert outcome.invoice_number == "R-1"
    assert requests(sandbox, "GET /v1/customers") == 0
    assert "customerId" not in created(sandbox)[0]["request"]


def test_gross_total_matches_the_documented_example() -> None:
    assert gross_total(parse_invoice(invoice())) == Decimal("240.00")
