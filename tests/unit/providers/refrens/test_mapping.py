"""The canonical invoice → Refrens' create body, field by field (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests import factories
from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, Reason
from worker.providers.refrens.adapter import build_request, refuse_unsupported
from worker.reference.gst_states import code_from_gstin, code_from_name

ADDRESS = {
    "street": "123 MG Road",
    "city": "Bengaluru",
    "state": "Karnataka",
    "postal_code": "560001",
    "country": "IN",
}
CUSTOMER = {
    "name": "Acme Traders",
    "phone": "+91 98765 43210",
    "email": "ap@acme.example",
    "tax_id": "29ABCDE1234F1Z5",
    "address": ADDRESS,
}


def doc(**changes: Any) -> dict[str, Any]:
    return factories.invoice("WEB-1", **({"customer": CUSTOMER} | changes))


def body(**changes: Any) -> dict[str, Any]:
    invoice = parse_invoice(doc(**changes))
    assert refuse_unsupported(invoice) is None
    return build_request(invoice)


def refusal(payload: dict[str, Any]) -> str:
    outcome = refuse_unsupported(parse_invoice(payload))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.INVALID_PAYLOAD
    return outcome.error


def test_every_mapped_field() -> None:
    sent = body(
        due_date="2026-07-15",
        currency="USD",
        lines=[
            {
                "name": "Consulting",
                "description": "July",
                "quantity": 2,
                "unit_price": 100,
                "tax_rate": 18,
                "price_includes_tax": False,
                "hsn": "998314",
            }
        ],
    )
    assert sent == {
        "invoiceNumber": "WEB-1",
        "invoiceDate": "2026-07-01",
        "dueDate": "2026-07-15",
        "invoiceType": "INVOICE",
        "currency": "USD",
        "billedTo": {
            "name": "Acme Traders",
            "street": "123 MG Road",
            "city": "Bengaluru",
            "pincode": "560001",
            "state": "Karnataka",
            "gstState": "29",
            "country": "IN",
            "gstin": "29ABCDE1234F1Z5",
            "phone": "+91 98765 43210",
            "email": "ap@acme.example",
        },
        "items": [
            {
                "name": "Consulting",
                "rate": 100,
                "quantity": 2,
                "gstRate": 18,
                "hsn": "998314",
                "description": "July",
            }
        ],
    }


def test_absent_optionals_are_omitted() -> None:
    payload = factories.invoice(
        None,
        issue_date=None,
        currency=None,
        customer={"name": "Bare", "address": {"country": "US"}},
        lines=[{"name": "X", "quantity": 1, "unit_price": 5}],
    )
    sent = build_request(parse_invoice(payload))
    assert sent == {
        "invoiceType": "INVOICE",
        "billedTo": {"name": "Bare", "country": "US"},
        "items": [{"name": "X", "rate": 5, "quantity": 1}],
    }


def test_tax_inclusive_price_becomes_the_pre_tax_rate() -> None:
    # factories' line: 1000 including 18% → 847.457627, which Refrens grosses back up to 1000.
    (entry,) = body()["items"]
    assert entry["rate"] == 847.457627
    assert round(Decimal(str(entry["rate"])) * Decimal("1.18"), 2) == 1000


@pytest.mark.parametrize(
    ("line", "rate"),
    [
        ({"discount": 10, "discount_type": "amount", "price_includes_tax": False}, 90),
        ({"discount": 5, "discount_type": "percent", "price_includes_tax": False}, 95),
        ({"discount": 18, "discount_type": "amount", "price_includes_tax": True}, 69.491525),
        ({"tax_rate": None, "price_includes_tax": True}, 100),
        ({"tax_rate": 0, "price_includes_tax": True}, 100),
    ],
)
def test_line_discounts_fold_into_the_rate(line: dict[str, Any], rate: float) -> None:
    base = {"name": "X", "quantity": 1, "unit_price": 100, "tax_rate": 18}
    (entry,) = body(lines=[{**base, **line}])["items"]
    assert entry["rate"] == rate


def test_charges_become_items() -> None:
    sent = body(charges=[{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}])
    assert sent["items"][1] == {
        "name": "Packaging",
        "rate": 50,
        "quantity": 1,
        "gstRate": 18,
        "hsn": "9985",
    }


def test_invoice_discount_is_spread_so_the_total_falls_by_it() -> None:
    lines = [
        {
            "name": "A",
            "quantity": 2,
            "unit_price": 100,
            "tax_rate": 18,
            "price_includes_tax": False,
        },
        {"name": "B", "quantity": 1, "unit_price": 50, "tax_rate": 0},
    ]
    charges = [{"name": "Freight", "amount": 10, "tax_rate": 18}]
    sent = body(lines=lines, charges=charges, discount=20)
    total = sum(
        Decimal(str(i["rate"])) * Decimal(str(i["quantity"])) * (100 + Decimal(i["gstRate"]))
        if "gstRate" in i
        else Decimal(str(i["rate"])) * Decimal(str(i["quantity"])) * 100
        for i in sent["items"]
    )
    # Gross: 236 + 50 + 11.80 = 297.80; less 20 = 277.80.
    assert round(total / 100, 2) == Decimal("277.80")
    rates = [i["rate"] for i in sent["items"]]
    # Every rate keeps 1 - 20 / 297.80 of itself.
    assert rates == [93.284083, 46.642042, 9.328408]


def test_cash_sale_without_customer_is_billed_to_cash_sale() -> None:
    payload = factories.invoice(
        "CS-1",
        customer=None,
        cash_sale=True,
        provider_options={"billedTo": {"country": "IN", "gstState": "29"}},
    )
    sent = build_request(parse_invoice(payload))
    assert sent["billedTo"] == {"name": "Cash Sale", "country": "IN", "gstState": "29"}
    assert refuse_unsupported(parse_invoice(payload)) is None


def test_gst_state_from_the_state_name_without_gstin() -> None:
    customer = {"name": "T", "address": {"state": "Tamil Nadu", "country": "IN"}}
    sent = body(customer=customer)
    assert sent["billedTo"] == {
        "name": "T",
        "state": "Tamil Nadu",
        "gstState": "33",
        "country": "IN",
    }


def test_foreign_customer_has_no_gst_fields() -> None:
    customer = {**CUSTOMER, "tax_id": "DE123456789", "address": {**ADDRESS, "country": "DE"}}
    billed = body(customer=customer)["billedTo"]
    assert billed["country"] == "DE"
    assert "gstin" not in billed
    assert "gstState" not in billed


def test_provider_options_merge_last_and_deep() -> None:
    options = {
        "invoiceType": "BOS",
        "billedTo": {"panNumber": "ABCDE1234F", "gstState": "07"},
        "email": {"to": {"name": "AP", "email": "ap@acme.example"}},
        "contact": {"email": "billing@us.example", "phone": "+91 80 1234 5678"},
        "invoiceTitle": "Tax Invoice",
    }
    sent = body(provider_options=options)
    assert sent["invoiceType"] == "BOS"
    assert sent["billedTo"]["panNumber"] == "ABCDE1234F"
    assert sent["billedTo"]["gstState"] == "07"
    assert sent["billedTo"]["name"] == "Acme Traders"
    assert sent["email"] == options["email"]
    assert sent["contact"] == options["contact"]
    assert sent["invoiceTitle"] == "Tax Invoice"


def test_dropped_fields_do_not_appear() -> None:
    sent = body(amount_paid=10, notes="thanks", customer={**CUSTOMER, "id": "c-1"})
    text = repr(sent)
    assert "thanks" not in text
    assert "c-1" not in text
    assert "amount_paid" not in text


@pytest.mark.parametrize(
    "kind",
    [
        "quotation",
        "credit_note",
        "purchase_bill",
        "purchase_return",
        "delivery_challan",
        "sales_order",
        "purchase_order",
    ],
)
def test_types_refrens_lacks_are_refused(kind: str) -> None:
    assert f"Refrens has no {kind!r} document" in refusal(doc(type=kind))


def test_missing_country_is_refused_unless_options_give_it() -> None:
    payload = factories.invoice("N-1")  # customer without an address
    assert "customer.address.country" in refusal(payload)
    payload["provider_options"] = {"billedTo": {"country": "AE"}}
    assert refuse_unsupported(parse_invoice(payload)) is None


def test_indian_customer_without_gst_state_is_refused() -> None:
    customer = {"name": "T", "address": {"country": "IN", "state": "Atlantis"}}
    assert "GST state code" in refusal(doc(customer=customer))


def test_options_cannot_unname_the_customer() -> None:
    payload = factories.invoice("N-2", customer=None, cash_sale=True)
    payload["provider_options"] = {"billedTo": {"name": ""}}
    assert refusal(payload).startswith("provider_options.billedTo.name:")


def test_discounts_larger_than_the_price_are_refused() -> None:
    line = {"name": "X", "quantity": 1, "unit_price": 5, "discount": 6}
    assert "lines.0.discount" in refusal(doc(lines=[line]))
    assert "exceeds the invoice's total" in refusal(doc(discount=5000))


def test_gst_state_codes() -> None:
    assert code_from_gstin("27AAPFU0939F1ZV") == "27"
    assert code_from_gstin("99AAPFU0939F1ZV") is None
    assert code_from_gstin("not a gstin") is None
    assert code_from_name("  jammu & kashmir ") == "01"
    assert code_from_name("Orissa") == "21"
    assert code_from_name("Andhra Pradesh") == "37"
    assert code_from_name("Bavaria") is None
