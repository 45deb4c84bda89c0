"""The canonical invoice → Billit's invoice body, and the tags that find it again; no I/O."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.providers.billit.facts import FACTS, TODAY
from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, Reason
from worker.providers.billit.account import AccountFacts
from worker.providers.billit.mapping import (
    build_request,
    gross_total,
    is_paid,
    key_of_tag,
    net_price,
    refuse_unmapped,
    refuse_unsupported,
    tag_for,
)
from worker.providers.billit.options import BillitOptions

OPTIONS = BillitOptions(invoice_type_id=1)


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "issue_date": "2026-07-01",
        "customer": {"name": "Acme AE", "tax_id": "EL123456789"},
        "lines": [{"name": "Consulting", "quantity": 1, "unit_price": 124, "tax_rate": 24}],
    }
    base.update(copy.deepcopy(changes))
    return base


def body_for(payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "facts": FACTS,
        "options": OPTIONS,
        "customer_id": 42,
        "tag": "invoice-sync:k",
        "today": TODAY,
    }
    args.update(kwargs)
    return build_request(parse_invoice(payload), **args)


def test_minimal_invoice_body() -> None:
    assert body_for(doc()) == {
        "invoiceDate": "2026-07-01",
        "invoiceTypeId": 1,
        "customerId": 42,
        "billerId": 3,
        "products": [{"details": "Consulting", "vatId": 11, "price": 100, "quantity": 1}],
        "tags": ["invoice-sync:k"],
        "sendMail": False,
    }


def test_every_field() -> None:
    payload = doc(
        due_date="2026-07-31",
        lines=[
            {
                "name": "Design",
                "description": "Logo, two rounds",
                "quantity": "1.5",
                "unit_price": 80,
                "tax_rate": 13,
                "price_includes_tax": False,
                "discount": "12.5",
                "discount_type": "percent",
                "hsn": "998391",
                "product_id": "P-1",
            },
            {"name": "Tea", "quantity": 3, "unit_price": "5.30", "discount": "1.06"},
        ],
        charges=[{"name": "Courier", "amount": "4.50", "tax_rate": 24}],
        amount_paid="146.58",
        notes="dropped",
    )
    body = body_for(payload, options=BillitOptions(invoice_type_id=1, measurement_unit=2))
    assert body["dateExpires"] == "2026-07-31"
    assert body["products"] == [
        {
            "details": "Design\nLogo, two rounds",
            "vatId": 12,
            "price": 80,
            "quantity": 1.5,
            "discount": 12.5,
            "measurementUnit": 2,
        },
        # No rate is 0%: the amount discount comes off the price.
        {"details": "Tea", "vatId": 14, "price": 4.24, "quantity": 3, "measurementUnit": 2},
        {"details": "Courier", "vatId": 11, "price": 4.5, "quantity": 1, "measurementUnit": 2},
    ]
    # 1.5 x 80 x 0.875 x 1.13 = 118.65; 3 x 4.24 = 12.72; 4.50 x 1.24 = 5.58.
    assert gross_total(parse_invoice(payload)) == Decimal("136.95")
    assert (body["isPaid"], body["paymentMethod"]) == (True, [5])
    assert "notes" not in str(body)
    assert "998391" not in str(body)


def test_no_issue_date_is_today_and_no_customer_has_no_customer_id() -> None:
    payload = doc(customer=None, cash_sale=True)
    del payload["issue_date"]
    body = body_for(payload, customer_id=None)
    assert body["invoiceDate"] == "2026-07-02"
    assert "customerId" not in body


def test_partial_payment_leaves_the_invoice_unpaid() -> None:
    assert "isPaid" not in body_for(doc(amount_paid="123.98"))
    assert body_for(doc(amount_paid="123.99"))["isPaid"] is True  # a cent of rounding
    assert body_for(doc(amount_paid=500))["isPaid"] is True
    assert "isPaid" not in body_for(doc(amount_paid=0))
    assert not is_paid(parse_invoice(doc()))


def test_payment_method_option_and_no_methods() -> None:
    options = BillitOptions(invoice_type_id=1, payment_method_id="card")
    assert body_for(doc(amount_paid=124), options=options)["paymentMethod"] == ["card"]
    bare = AccountFacts(
        vats=FACTS.vats, payment_methods=(), biller_id=None, country="GR", refusal=None
    )
    body = body_for(doc(amount_paid=124), facts=bare)
    assert body["isPaid"] is True
    assert "paymentMethod" not in body
    assert "billerId" not in body


def test_provider_options_are_merged_last() -> None:
    body = body_for(doc(provider_options={"invoiceTypeId": 7, "sendMail": True, "x": 1}))
    assert (body["invoiceTypeId"], body["sendMail"], body["x"]) == (7, True, 1)


def test_invoice_types_by_canonical_type() -> None:
    options = BillitOptions(invoice_type_id=1, invoice_type_ids={"credit_note": 2})
    assert body_for(doc(type="credit_note"), options=options)["invoiceTypeId"] == 2
    refusal = refuse_unsupported(parse_invoice(doc(type="quotation")), options)
    assert refusal is not None
    assert refusal.reason is Reason.INVALID_PAYLOAD
    assert "'quotation'" in refusal.error


@pytest.mark.parametrize(
    ("changes", "options", "words"),
    [
        ({"currency": "USD"}, OPTIONS, "bills in EUR"),
        ({"discount": 5}, OPTIONS, "invoice-level discount"),
        ({}, BillitOptions(), "no Billit invoiceTypeId"),
    ],
)
def test_refused_before_sending(
    changes: dict[str, Any], options: BillitOptions, words: str
) -> None:
    refusal = refuse_unsupported(parse_invoice(doc(**changes)), options)
    assert isinstance(refusal, DeadLetter)
    assert refusal.reason is Reason.INVALID_PAYLOAD
    assert words in refusal.error


def test_accepted_currencies() -> None:
    for currency in (None, "EUR"):
        assert refuse_unsupported(parse_invoice(doc(currency=currency)), OPTIONS) is None
    inr = BillitOptions(invoice_type_id=1, currency="INR")
    assert refuse_unsupported(parse_invoice(doc(currency="INR")), inr) is None


def test_a_rate_without_a_vat_is_rejected_naming_the_known_ones() -> None:
    payload = doc(charges=[{"name": "Fee", "amount": 1, "tax_rate": 17}])
    refusal = refuse_unmapped(parse_invoice(payload), FACTS)
    assert isinstance(refusal, DeadLetter)
    assert refusal.reason is Reason.REJECTED
    assert refusal.error == (
        "Billit has no vat for tax rate 17% in this account (its vats: 0%, 6%, 13%, 24%)"
    )
    assert refuse_unmapped(parse_invoice(doc()), FACTS) is None


def test_net_price() -> None:
    assert net_price(Decimal(124), Decimal(24), includes_tax=True) == Decimal(100)
    assert net_price(Decimal(100), Decimal(24), includes_tax=True) == Decimal("80.6452")
    assert net_price(Decimal(100), Decimal(24), includes_tax=False) == Decimal(100)
    assert net_price(Decimal(100), Decimal(0), includes_tax=True) == Decimal(100)


def test_tags_carry_short_keys_and_hash_long_ones() -> None:
    assert tag_for("order-77") == "invoice-sync:order-77"
    assert key_of_tag("invoice-sync:order-77") == "order-77"
    long_key = "k" * 65
    hashed = tag_for(long_key)
    assert hashed.startswith("invoice-sync:sha256:")
    assert len(hashed) == len("invoice-sync:sha256:") + 40
    assert tag_for(long_key) == hashed
    assert tag_for("with space") != tag_for("with-space")
    assert tag_for("sha256:abc").startswith("invoice-sync:sha256:")
    assert key_of_tag(hashed) is None
    assert key_of_tag("someone-else") is None
