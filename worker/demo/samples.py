"""Sample canonical invoices for the demo: small shops in India (INR) and Greece (EUR).

Pure and seeded: the same ``random.Random`` gives the same invoices, so a demo run can be
replayed with ``--seed``. Nothing here knows a provider: a profile says which currency it bills
in (``SandboxProfile.currency``) and adds its own ``provider_options``.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Place:
    city: str
    state: str
    postal_code: str
    region_code: str
    """The tax-id prefix of the state (India's GSTIN state code); unused where there is none."""


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    low: int
    high: int
    tax_rate: int
    hsn: str | None = None


@dataclass(frozen=True, slots=True)
class Locale:
    currency: str
    country: str
    phone_prefix: str
    businesses: tuple[str, ...]
    people: tuple[str, ...]
    streets: tuple[str, ...]
    places: tuple[Place, ...]
    items: tuple[Item, ...]
    charges: tuple[Item, ...]


INDIA = Locale(
    currency="INR",
    country="IN",
    phone_prefix="+91",
    businesses=(
        "Sharma Electronics",
        "Iyer & Sons",
        "Kaveri Textiles",
        "Patel Hardware",
        "Nair Spice Traders",
        "Gupta Stationers",
        "Reddy Agro Supplies",
        "Bose Sweets",
        "Mehta Pharma",
        "Das Book House",
        "Joshi Kirana Store",
        "Menon Tailors",
    ),
    people=(
        "Ananya Rao",
        "Rohan Verma",
        "Priya Natarajan",
        "Arjun Singh",
        "Kavya Pillai",
        "Vikram Chatterjee",
    ),
    streets=(
        "12 MG Road",
        "45 Linking Road",
        "8 Anna Salai",
        "221 Park Street",
        "17 FC Road",
        "3 Banjara Hills Rd 2",
        "56 MI Road",
        "9 Marine Drive",
    ),
    places=(
        Place("Bengaluru", "Karnataka", "560001", "29"),
        Place("Mumbai", "Maharashtra", "400050", "27"),
        Place("Chennai", "Tamil Nadu", "600002", "33"),
        Place("Kolkata", "West Bengal", "700016", "19"),
        Place("Pune", "Maharashtra", "411004", "27"),
        Place("Hyderabad", "Telangana", "500034", "36"),
        Place("Jaipur", "Rajasthan", "302001", "08"),
        Place("Kochi", "Kerala", "682031", "32"),
    ),
    items=(
        Item("Basmati Rice 5kg", 450, 900, 5, "1006"),
        Item("Masala Chai 250g", 120, 260, 5, "0902"),
        Item("Cotton Kurta", 499, 1499, 12, "6206"),
        Item("Pressure Cooker 5L", 1400, 2600, 12, "7615"),
        Item("LED Bulb 9W", 79, 149, 12, "8539"),
        Item("Notebook A4 (6 pack)", 180, 320, 12, "4820"),
        Item("Ceiling Fan", 1800, 4200, 18, "8414"),
        Item("Mobile Charger", 299, 999, 18, "8504"),
        Item("Mixer Grinder", 2500, 5200, 18, "8509"),
        Item("Website Maintenance (month)", 3000, 12000, 18, "998313"),
        Item("Consulting Service (hour)", 1500, 4000, 18, "998314"),
        Item("Printed Books", 150, 800, 0, "4901"),
    ),
    charges=(Item("Packaging", 20, 80, 18, "9985"), Item("Delivery", 40, 150, 18, "9965")),
)

GREECE = Locale(
    currency="EUR",
    country="GR",
    phone_prefix="+30",
    businesses=(
        "Papadopoulos Bakery",
        "Kostas Olive Oils",
        "Nikolaidis Hardware",
        "Athena Florist",
        "Georgiou Cafe",
        "Dimitriou Books",
        "Aegean Ceramics",
        "Kritikos Wines",
    ),
    people=("Eleni Vlachou", "Giorgos Antoniou", "Maria Karamanli", "Nikos Stavrou"),
    streets=("Ermou 24", "Tsimiski 51", "Agiou Nikolaou 7", "25is Avgoustou 12", "Kifisias 110"),
    places=(
        Place("Athens", "Attica", "10563", ""),
        Place("Thessaloniki", "Central Macedonia", "54624", ""),
        Place("Patras", "Western Greece", "26221", ""),
        Place("Heraklion", "Crete", "71202", ""),
        Place("Larissa", "Thessaly", "41222", ""),
    ),
    items=(
        Item("Extra Virgin Olive Oil 1L", 9, 16, 13),
        Item("Feta PDO 400g", 4, 8, 13),
        Item("Thyme Honey 450g", 7, 13, 13),
        Item("Greek Coffee 194g", 3, 6, 24),
        Item("Ceramic Bowl", 12, 35, 24),
        Item("Espresso Machine Service", 45, 120, 24),
        Item("Bookkeeping (hour)", 30, 70, 24),
        Item("Paperback Book", 9, 22, 6),
    ),
    charges=(Item("Courier", 4, 9, 24), Item("Gift Wrapping", 2, 5, 24)),
)

LOCALES = {locale.currency: locale for locale in (INDIA, GREECE)}


def locale_for(currency: str) -> Locale:
    """The shops for a currency; ``ValueError`` names the ones there are."""
    try:
        return LOCALES[currency]
    except KeyError:
        known = ", ".join(sorted(LOCALES))
        raise ValueError(f"no demo shops bill in {currency}; there are: {known}") from None


def sample_invoice(
    rng: random.Random, locale: Locale, *, number: str, today: date
) -> dict[str, Any]:
    """One valid canonical invoice: a customer with an address, one to five lines, sometimes a
    delivery charge and a line discount."""
    issued = today - timedelta(days=rng.randint(0, 20))
    doc: dict[str, Any] = {
        "type": "invoice",
        "number": number,
        "issue_date": issued.isoformat(),
        "due_date": (issued + timedelta(days=rng.choice((7, 15, 30)))).isoformat(),
        "currency": locale.currency,
        "customer": _customer(rng, locale),
        "lines": [_line(rng, item) for item in rng.sample(locale.items, rng.randint(1, 5))],
    }
    if rng.random() < 0.3:
        charge = rng.choice(locale.charges)
        doc["charges"] = [
            {
                "name": charge.name,
                "amount": rng.randint(charge.low, charge.high),
                "tax_rate": charge.tax_rate,
                "hsn": charge.hsn,
            }
        ]
    if rng.random() < 0.15:
        doc["notes"] = "Thank you for your business!"
    return doc


def _customer(rng: random.Random, locale: Locale) -> dict[str, Any]:
    business = rng.random() < 0.75
    name = rng.choice(locale.businesses if business else locale.people)
    place = rng.choice(locale.places)
    handle = "".join(c for c in name.lower() if c.isalnum())[:16]
    return {
        "name": name,
        "phone": f"{locale.phone_prefix}{_phone_digits(rng, locale)}",
        "email": f"accounts@{handle}.example" if business else f"{handle}@mail.example",
        "tax_id": _tax_id(rng, locale, place) if business else None,
        "address": {
            "street": rng.choice(locale.streets),
            "city": place.city,
            "state": place.state,
            "postal_code": place.postal_code,
            "country": locale.country,
        },
    }


def _phone_digits(rng: random.Random, locale: Locale) -> str:
    if locale.country == "IN":
        return rng.choice("6789") + "".join(rng.choices(string.digits, k=9))
    return "69" + "".join(rng.choices(string.digits, k=8))


def _tax_id(rng: random.Random, locale: Locale, place: Place) -> str:
    if locale.country == "IN":
        # GSTIN shape: state code, PAN (5 letters, 4 digits, 1 letter), entity, Z, check.
        pan = "".join(rng.choices(string.ascii_uppercase, k=5))
        pan += "".join(rng.choices(string.digits, k=4)) + rng.choice(string.ascii_uppercase)
        return f"{place.region_code}{pan}1Z{rng.choice(string.digits + string.ascii_uppercase)}"
    return "EL" + "".join(rng.choices(string.digits, k=9))


def _line(rng: random.Random, item: Item) -> dict[str, Any]:
    price = Decimal(rng.randint(item.low * 100, item.high * 100)) / 100
    line: dict[str, Any] = {
        "name": item.name,
        "quantity": rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 10, 12)),
        "unit_price": str(price.quantize(Decimal("0.01"))),
        "tax_rate": item.tax_rate,
        "price_includes_tax": rng.random() < 0.5,
    }
    if item.hsn is not None:
        line["hsn"] = item.hsn
    if rng.random() < 0.1:
        line.update(discount=rng.choice((5, 10)), discount_type="percent")
    return line


MALFORMED: tuple[dict[str, Any], ...] = (
    {"customer": {"name": "Rohan Verma", "phone": "+919812345678"}, "lines": []},
    {
        "customer": {"phone": "+919812345678"},
        "lines": [{"name": "Tea", "quantity": 1, "unit_price": 10}],
    },
    {"customer": {"name": "Eleni"}, "lines": [{"name": "Tea", "quantity": 0, "unit_price": 10}]},
    {
        "customer": {"name": "Kostas"},
        "lines": [{"name": "Tea", "quantity": 1, "unit_price": 10}],
        "totl": 10,
    },
)
"""Payloads our own validation refuses (no lines, no customer name, a zero quantity, a typo'd
key): a careless producer's rows, dead-lettered as ``invalid_payload`` without being sent."""


def malformed(index: int, number: str) -> dict[str, Any]:
    return {**MALFORMED[index % len(MALFORMED)], "number": number}
