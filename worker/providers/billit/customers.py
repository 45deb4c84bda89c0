"""The canonical customer as a Billit ``customerId``: given, found, or created (once).

Billit's invoice takes only a ``customerId``. ``customer.id`` is used as is when the producer
knows it. Otherwise the customer is searched with ``GET /v1/customers?q=`` by tax id, then
e-mail, then phone (the fields Billit's search covers) and the results are matched exactly
here, since ``q`` is a loose search; failing that it is created with ``POST /v1/customers``.
Each answer is cached per adapter (so per account) under the identifier that found it, and a
lock per identifier makes concurrent invoices for one new customer create it once.

The pure parts (``search_keys``, ``matches``, ``customer_body``, ``customer_type``) are tested
without I/O; ``CustomerDirectory`` does the calls through functions the adapter passes in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from worker.invoice import Customer
from worker.providers.billit.options import BillitId

# Billit's customerType codes (its published specification).
DOMESTIC, EU, OUTSIDE_EU, PRIVATE = 1, 2, 3, 4
EU_COUNTRIES = frozenset(
    {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU"}
    | {"IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}
)
# VAT ids are written with or without their EU prefix ("EL123456789"); Greece's is EL.
_VAT_PREFIX = re.compile(r"^(?:EL|[A-Z]{2})(?=\d)")
_NOT_DIGIT = re.compile(r"\D")
_GREEK_MOBILE = re.compile(r"^(?:\+?30|0030)?69\d{8}$")

Search = Callable[[str], Awaitable[list[dict[str, Any]]]]
Create = Callable[[dict[str, Any]], Awaitable[BillitId]]


def search_keys(customer: Customer) -> list[tuple[str, str]]:
    """``(kind, q)`` pairs to search by, most specific first: tax id, e-mail, phone.

    Each ``q`` is the part any stored spelling contains: a VAT id without its country prefix,
    a phone's last ten digits (with or without the country code, they are the same).
    """
    keys: list[tuple[str, str]] = []
    if customer.tax_id and normal_vat(customer.tax_id):
        keys.append(("tax_id", normal_vat(customer.tax_id)))
    if customer.email:
        keys.append(("email", customer.email.strip()))
    if customer.phone and _phone_digits(customer.phone):
        keys.append(("phone", _phone_digits(customer.phone)))
    return keys


def matches(found: Mapping[str, Any], kind: str, value: str) -> bool:
    """Whether a search result is exactly the customer ``value`` identifies."""
    if kind == "tax_id":
        theirs = found.get("vatId")
        return isinstance(theirs, str) and normal_vat(theirs) == normal_vat(value)
    if kind == "email":
        theirs = found.get("email")
        return isinstance(theirs, str) and theirs.strip().casefold() == value.casefold()
    wanted = _phone_digits(value)
    return any(
        isinstance(found.get(field), str) and _phone_digits(found[field]) == wanted
        for field in ("phone", "mobile")
    )


def normal_vat(vat: str) -> str:
    """A VAT id compared as Billit's search would: no spaces or dots, no country prefix."""
    compact = re.sub(r"[\s.\-]", "", vat).upper()
    return _VAT_PREFIX.sub("", compact)


def customer_type(customer: Customer, home: str) -> int:
    """Domestic, EU or outside-EU business; a customer without a tax id is a private person."""
    if not customer.tax_id:
        return PRIVATE
    country = _country(customer, home)
    if country == home:
        return DOMESTIC
    return EU if country in EU_COUNTRIES else OUTSIDE_EU


def customer_body(customer: Customer, home: str) -> dict[str, Any]:
    """The ``POST /v1/customers`` body; absent values are omitted, not sent as null."""
    address = customer.address
    body: dict[str, Any] = {
        "isCompany": bool(customer.tax_id),
        "company": customer.name,
        "customerType": customer_type(customer, home),
        "country": _country(customer, home),
    }
    phone = customer.phone.strip() if customer.phone else None
    optional = {
        "vatId": customer.tax_id,
        "streetAddress": address and address.street,
        "postalCode": address and address.postal_code,
        "city": address and address.city,
        "mobile" if phone and _is_mobile(phone) else "phone": phone,
        "email": customer.email,
    }
    body.update((key, value) for key, value in optional.items() if value)
    return body


def cache_key(customer: Customer, home: str) -> str:
    """The cache key of a customer with no searchable identifier: name and address."""
    address = customer.address
    parts = [customer.name or "", _country(customer, home)]
    parts += [(address and address.city) or "", (address and address.street) or ""]
    return "name:" + "|".join(part.casefold() for part in parts)


class CustomerDirectory:
    """Billit customer ids by identifier, for one account. ``search`` and ``create`` are given
    per call, so each attempt's calls are classified with that attempt's context."""

    def __init__(self) -> None:
        self._ids: dict[str, BillitId] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def resolve(
        self, customer: Customer, home: str, *, search: Search, create: Create
    ) -> BillitId:
        """The customer's Billit id: given, cached, found by search, or created."""
        if customer.id is not None:
            return customer.id
        keys = search_keys(customer)
        names = [f"{kind}:{value.casefold()}" for kind, value in keys] or [
            cache_key(customer, home)
        ]
        async with self._locks.setdefault(names[0], asyncio.Lock()):
            known = next((self._ids[name] for name in names if name in self._ids), None)
            if known is None:
                known = await _find(keys, search) or await create(customer_body(customer, home))
            for name in names:
                self._ids[name] = known
            return known

    def forget(self, customer_id: BillitId) -> None:
        """Drop every cached name for ``customer_id`` (Billit no longer knows it)."""
        for name in [name for name, known in self._ids.items() if known == customer_id]:
            del self._ids[name]


async def _find(keys: list[tuple[str, str]], search: Search) -> BillitId | None:
    for kind, value in keys:
        for found in await search(value):
            if matches(found, kind, value) and found.get("id") is not None:
                return found["id"]  # type: ignore[no-any-return]
    return None


def _country(customer: Customer, home: str) -> str:
    address = customer.address
    return (address and address.country) or home


def _phone_digits(phone: str) -> str:
    # The last ten digits: a number written with or without its country code compares equal.
    return _NOT_DIGIT.sub("", phone)[-10:]


def _is_mobile(phone: str) -> bool:
    return bool(_GREEK_MOBILE.match(re.sub(r"[\s\-().]", "", phone)))
