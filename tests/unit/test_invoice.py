import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from tests.factories import invoice
from worker.invoice import describe_validation_error, json_schema, parse_invoice

# Every field of the canonical invoice, money as JSON numbers.
FULL_EXAMPLE = {
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


def test_full_example_parses_with_decimal_money() -> None:
    parsed = parse_invoice(json.dumps(FULL_EXAMPLE))
    assert parsed.lines[0].unit_price == Decimal(1000)
    assert parsed.amount_paid == Decimal(1180)
    assert parsed.customer is not None
    assert parsed.customer.address is not None
    assert parsed.customer.address.country == "IN"


def test_decimal_strings_are_exact() -> None:
    parsed = parse_invoice(invoice(lines=[{"name": "x", "quantity": "0.1", "unit_price": "0.2"}]))
    assert parsed.lines[0].quantity + parsed.lines[0].unit_price == Decimal("0.3")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [{"name": "x", "quantity": 0, "unit_price": 1}]}, "lines.0.quantity"),
        ({"lines": [{"name": "x", "quantity": 1, "unit_price": -1}]}, "lines.0.unit_price"),
        (
            {"lines": [{"name": "x", "quantity": 1, "unit_price": 1, "unit_prise": 2}]},
            "lines.0.unit_prise",
        ),
        ({"totl": 5}, "totl"),
        ({"customer": None}, "customer.name is required"),
        ({"type": "receipt"}, "type"),
        ({"currency": "rupees"}, "currency"),
        ({"cash_sale": "yes"}, "cash_sale"),
        ({"lines": [{"name": "x", "quantity": "NaN", "unit_price": 1}]}, "lines.0.quantity"),
        ({"notes": "x" * 10_000}, "notes"),
    ],
)
def test_bad_payloads_are_refused_with_a_message_naming_the_field(
    change: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_invoice(invoice(**change))
    assert where in describe_validation_error(caught.value)


def test_cash_sale_needs_no_customer() -> None:
    assert parse_invoice(invoice(customer=None, cash_sale=True)).cash_sale


def test_schema_describes_the_contract() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["lines"]
    assert "invoice" in json.dumps(schema["properties"]["type"])


def test_charges_default_to_an_empty_list_of_its_own() -> None:
    first, second = parse_invoice(invoice()), parse_invoice(invoice())
    assert first.charges == []
    assert first.charges is not second.charges
    assert json_schema()["properties"]["charges"]["default"] == []
