"""The canonical invoice → BillClap's create-invoice body, field by field."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, Reason
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billclap.adapter import SPEC, BillClap, BillClapOptions, build_request
from worker.providers.billclap.mapping import mobile_number, refuse_unsupported
from worker.providers.registry import PROVIDERS
from worker.reference.countries import COUNTRY_NAMES, country_name

# A canonical invoice with every field: 1,000 with tax included, 50 of packaging, 1,180 paid.
FULL_EXAMPLE: dict[str, Any] = {
    "type": "invoice",
    "number": "WEB-2026-000123",
    "issue_date": "2026-07-01",
    "due_date": "2026-07-15",
    "currency": "INR",
    "customer": {
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
    "cash_sale": False,
    "lines": [
        {
            "name": "Consulting Service",
            "description": None,
            "quantity": 1,
            "unit_price": 1000,
            "tax_rate": 18,
            "price_includes_tax": True,
            "hsn": "998314",
            "discount": 0,
            "discount_type": "amount",
            "product_id": None,
        }
    ],
    "charges": [{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}],
    "discount": 0,
    "amount_paid": 1180,
    "notes": None,
    "provider_options": {},
}

# The example request of BillClap's create-invoice documentation, verbatim.
DOC_EXAMPLE_REQUEST: dict[str, Any] = {
    "type": "SALESINVOICE",
    "issue_date": "2026-07-01",
    "due_date": "2026-07-15",
    "receive_amount": 1180,
    "party_detail": {
        "party_name": "Acme Traders",
        "mobile_no": "9876543210",
        "gst_no": "29ABCDE1234F1Z5",
        "address": "123 MG Road",
        "city": "Bengaluru",
        "state": "Karnataka",
        "country": "India",
        "pin_code": "560001",
    },
    "product_details": [
        {
            "product_name": "Consulting Service",
            "product_sell_price": 1000,
            "product_sell_price_tax_type": "With Tax",
            "product_gst": 18,
            "product_hsn": "998314",
            "product_quantity": 1,
        }
    ],
    "additional_charges": [
        {"chargeName": "Packaging", "chargeValue": 50, "tax": 18, "hsn_code": "9985"}
    ],
}


def example(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FULL_EXAMPLE)
    doc.update(changes)
    return doc


def mapped(**changes: Any) -> dict[str, Any]:
    return build_request(parse_invoice(example(**changes)))


def test_full_example_maps_to_billclaps_documented_example_request() -> None:
    # BillClap's example has no invoice_number; ours carries one.
    assert mapped() == {**DOC_EXAMPLE_REQUEST, "invoice_number": "WEB-2026-000123"}


@pytest.mark.parametrize(
    ("canonical", "billclap"),
    [
        ("invoice", "SALESINVOICE"),
        ("quotation", "QUOTATION"),
        ("credit_note", "SALESRETURN"),
        ("purchase_bill", "PURCHASEBILL"),
        ("purchase_return", "PURCHASERETURN"),
        ("delivery_challan", "DELIVERYCHALLAN"),
        ("sales_order", "SALEORDER"),
        ("purchase_order", "PURCHASEORDER"),
    ],
)
def test_every_document_type_has_its_billclap_type(canonical: str, billclap: str) -> None:
    assert mapped(type=canonical)["type"] == billclap


def test_absent_optional_fields_are_omitted_not_null() -> None:
    body = build_request(
        parse_invoice(
            {"cash_sale": True, "lines": [{"name": "Tea", "quantity": 2, "unit_price": 10}]}
        )
    )
    assert body == {
        "type": "SALESINVOICE",
        "party_detail": {"cash_sale": True},
        "product_details": [
            {
                "product_name": "Tea",
                "product_sell_price": 10,
                "product_sell_price_tax_type": "With Tax",
                "product_quantity": 2,
            }
        ],
    }


def test_number_amount_paid_and_discount() -> None:
    body = mapped(number="A-7", amount_paid="12.50", discount="3.25")
    assert body["invoice_number"] == "A-7"
    assert body["receive_amount"] == 12.5
    assert body["additional_discount"] == 3.25
    assert "additional_discount" not in mapped(discount=0)
    assert mapped(amount_paid=0)["receive_amount"] == 0
    assert "receive_amount" not in mapped(amount_paid=None)
    assert "invoice_number" not in mapped(number=None)


def test_dates_are_iso_and_notes_are_dropped() -> None:
    body = mapped(issue_date="2026-01-05", due_date="2026-02-05", notes="thank you")
    assert (body["issue_date"], body["due_date"]) == ("2026-01-05", "2026-02-05")
    assert "thank you" not in repr(body)


def test_party_detail_from_every_customer_field() -> None:
    customer = {
        "id": "42",
        "name": "Globex",
        "phone": "080-1234 5678",
        "email": "x@y.example",
        "tax_id": "27AAAAA0000A1Z5",
        "address": {
            "street": "1 Road",
            "city": "Pune",
            "state": "Maharashtra",
            "postal_code": "411001",
            "country": "DE",
        },
    }
    assert mapped(customer=customer)["party_detail"] == {
        "party_id": 42,
        "party_name": "Globex",
        "mobile_no": "08012345678",
        "gst_no": "27AAAAA0000A1Z5",
        "address": "1 Road",
        "city": "Pune",
        "state": "Maharashtra",
        "country": "Germany",
        "pin_code": "411001",
    }


def test_party_id_stays_a_string_when_not_all_digits() -> None:
    body = mapped(customer={"id": "cust-9", "name": "X"})
    assert body["party_detail"] == {"party_id": "cust-9", "party_name": "X"}
    assert mapped(customer={"id": 7, "name": "X"})["party_detail"]["party_id"] == 7


def test_cash_sale_flag_is_sent_only_for_cash_sales() -> None:
    assert mapped(cash_sale=True)["party_detail"]["cash_sale"] is True
    assert "cash_sale" not in mapped()["party_detail"]


@pytest.mark.parametrize(
    ("phone", "mobile"),
    [
        ("+919876543210", "9876543210"),
        ("+91 98765-43210", "9876543210"),
        ("98765 43210", "9876543210"),
        ("+4930123456", "+4930123456"),
        ("+91 80 1234 56789", "+9180123456789"),  # 11 digits after +91: not a mobile, kept whole
        (" - ", None),
        (None, None),
    ],
)
def test_mobile_number_normalisation(phone: str | None, mobile: str | None) -> None:
    assert mobile_number(phone) == mobile


def test_product_detail_from_every_line_field() -> None:
    line = {
        "name": "Widget",
        "description": "Blue",
        "quantity": "2.5",
        "unit_price": "99.99",
        "tax_rate": 12,
        "price_includes_tax": False,
        "hsn": "8471",
        "discount": 10,
        "discount_type": "percent",
        "product_id": "301",
    }
    assert mapped(lines=[line])["product_details"] == [
        {
            "product_id": 301,
            "product_name": "Widget",
            "product_description": "Blue",
            "product_sell_price": 99.99,
            "product_sell_price_tax_type": "Without Tax",
            "product_gst": 12,
            "product_hsn": "8471",
            "product_quantity": 2.5,
            "discount_type": "percentage",
            "product_discount": 10,
        }
    ]


def test_amount_discount_is_rupees_and_missing_tax_rate_omits_gst() -> None:
    line = {"name": "W", "quantity": 1, "unit_price": 5, "discount": "1.5"}
    (item,) = mapped(lines=[line])["product_details"]
    assert (item["discount_type"], item["product_discount"]) == ("RS", 1.5)
    assert "product_gst" not in item


def test_charges_always_carry_tax_and_hsn_when_known() -> None:
    charges = [{"name": "Freight", "amount": "20.5"}, {"name": "Pack", "amount": 5, "hsn": "9985"}]
    assert mapped(charges=charges)["additional_charges"] == [
        {"chargeName": "Freight", "chargeValue": 20.5, "tax": 0},
        {"chargeName": "Pack", "chargeValue": 5, "tax": 0, "hsn_code": "9985"},
    ]
    assert "additional_charges" not in mapped(charges=[])


def test_money_is_a_json_number_never_a_string() -> None:
    body = mapped(amount_paid="100.10")
    assert isinstance(body["receive_amount"], float)
    assert body["receive_amount"] == float(Decimal("100.10"))


def test_provider_options_add_fields_and_cannot_replace_the_customers() -> None:
    body = mapped(provider_options={"bank_id": 3, "autoRoundOffChecked": True})
    assert body["bank_id"] == 3
    assert body["autoRoundOffChecked"] is True
    assert body["party_detail"]["state"] == "Karnataka"
    replaced = parse_invoice(example(provider_options={"party_detail": {"state": "Kerala"}}))
    refusal = refuse_unsupported(replaced)
    assert refusal is not None
    assert refusal.error.startswith("provider_options.party_detail.state:")


@pytest.mark.parametrize("currency", ["INR", None])
def test_rupee_invoices_are_sent(currency: str | None) -> None:
    assert refuse_unsupported(parse_invoice(example(currency=currency))) is None


def test_other_currencies_are_refused_before_sending() -> None:
    refusal = refuse_unsupported(parse_invoice(example(currency="EUR")))
    assert isinstance(refusal, DeadLetter)
    assert refusal.reason is Reason.INVALID_PAYLOAD
    assert "EUR" in refusal.error
    assert refusal.http_status is None


def test_unknown_country_code_is_refused_before_sending() -> None:
    doc = example()
    doc["customer"]["address"]["country"] = "XX"
    refusal = refuse_unsupported(parse_invoice(doc))
    assert refusal is not None
    assert refusal.reason is Reason.INVALID_PAYLOAD


def test_country_table_is_complete_iso_3166() -> None:
    assert len(COUNTRY_NAMES) == 249
    assert all(len(code) == 2 and code.isupper() for code in COUNTRY_NAMES)
    assert country_name("IN") == "India"
    assert country_name("in") == "India"
    assert country_name("GB") == "United Kingdom"
    assert country_name("ZZ") is None


def test_retry_is_safe_exactly_when_the_invoice_has_a_number() -> None:
    adapter = BillClap(
        Credentials(base_url="http://x", token="t0k3n"), HttpTimeouts(connect=1, total=1)
    )
    assert adapter.retry_is_safe(parse_invoice(example()))
    assert not adapter.retry_is_safe(parse_invoice(example(number=None)))
    assert "t0k3n" not in repr(adapter)


def test_spec_registers_billclap_with_strict_options() -> None:
    assert PROVIDERS["billclap"] is SPEC
    assert SPEC.options is BillClapOptions
    BillClapOptions.model_validate({})
    with pytest.raises(ValueError, match="extra"):
        BillClapOptions.model_validate({"url_key": "x"})
    adapter = SPEC.factory(
        Credentials(base_url="http://x", token="t"), {}, HttpTimeouts(connect=1, total=1)
    )
    assert adapter.name == "billclap"
