"""The canonical customer → Billit's customer body, search keys and type; no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from worker.invoice import Customer
from worker.providers.billit.customers import (
    cache_key,
    customer_body,
    customer_type,
    matches,
    normal_vat,
    search_keys,
)


def customer(**fields: Any) -> Customer:
    return Customer.model_validate({"name": "Acme", **fields})


def test_search_keys_in_order_and_normalised() -> None:
    full = customer(tax_id="EL 123.456.789", email=" ap@acme.example", phone="+30 210-1234567")
    assert search_keys(full) == [
        ("tax_id", "123456789"),
        ("email", "ap@acme.example"),
        ("phone", "2101234567"),
    ]
    assert search_keys(customer()) == []


@pytest.mark.parametrize(
    ("found", "kind", "value", "expected"),
    [
        ({"vatId": "EL123456789"}, "tax_id", "123456789", True),
        ({"vatId": "1234567890"}, "tax_id", "123456789", False),
        ({"vatId": None}, "tax_id", "123456789", False),
        ({"email": "AP@Acme.Example "}, "email", "ap@acme.example", True),
        ({"email": "xap@acme.example"}, "email", "ap@acme.example", False),
        ({"phone": "210 1234567"}, "phone", "2101234567", True),
        ({"mobile": "+306912345678"}, "phone", "6912345678", True),
        ({"phone": "2101234568"}, "phone", "2101234567", False),
    ],
)
def test_search_results_must_match_exactly(
    found: dict[str, Any], kind: str, value: str, expected: bool
) -> None:
    assert matches(found, kind, value) is expected


def test_normal_vat() -> None:
    assert normal_vat("EL 123 456 789") == normal_vat("123456789") == "123456789"
    assert normal_vat("de811111111") == "811111111"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 4),
        ({"tax_id": "123"}, 1),
        ({"tax_id": "123", "address": {"country": "GR"}}, 1),
        ({"tax_id": "123", "address": {"country": "FR"}}, 2),
        ({"tax_id": "123", "address": {"country": "US"}}, 3),
        ({"address": {"country": "FR"}}, 4),
    ],
)
def test_customer_type(fields: dict[str, Any], expected: int) -> None:
    assert customer_type(customer(**fields), "GR") == expected


def test_customer_body() -> None:
    full = customer(
        tax_id="FR12345678901",
        email="a@b.fr",
        phone="+33 1 23 45 67 89",
        address={"street": "1 rue X", "city": "Paris", "postal_code": "75001", "country": "FR"},
    )
    assert customer_body(full, "GR") == {
        "isCompany": True,
        "company": "Acme",
        "customerType": 2,
        "country": "FR",
        "vatId": "FR12345678901",
        "streetAddress": "1 rue X",
        "postalCode": "75001",
        "city": "Paris",
        "phone": "+33 1 23 45 67 89",
        "email": "a@b.fr",
    }
    mobile = customer_body(customer(phone="+30 691 234 5678"), "GR")
    assert mobile == {
        "isCompany": False,
        "company": "Acme",
        "customerType": 4,
        "country": "GR",
        "mobile": "+30 691 234 5678",
    }


def test_cache_key_for_customers_without_identifiers() -> None:
    one = customer(address={"city": "Athens", "street": "Ermou 1"})
    assert cache_key(one, "GR") == "name:acme|gr|athens|ermou 1"
    assert cache_key(customer(), "GR") != cache_key(one, "GR")
