"""The Refrens sandbox's invoice schema: validation as mongoose words it, and computed totals.

Refrens stores invoices with mongoose behind Feathers, so a refused create is a 400 BadRequest
``"Invoice validation failed: <path>: <message>, ..."`` with ``errors`` keyed by path
(``{"message", "name", "kind", "path", "value"}``). Required per the document: ``billedTo.name``,
``billedTo.country`` (ISO alpha-2), ``billedTo.gstState`` for India, ``items[].name``, ``rate``,
``quantity``. Keys the schema lacks are dropped silently, as mongoose's strict mode does.

Totals follow the document's example: per item ``subTotal = amount = rate x quantity``, tax
``amount x gstRate / 100`` reported whole as ``igst`` and halved as ``cgst``/``sgst``,
``total = amount + tax``; ``finalTotal`` sums them. A ``BOS`` (bill of supply) carries no tax.
Amounts are exact ``Decimal`` until each figure is rounded to paise (half up).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from worker.reference.countries import COUNTRY_NAMES
from worker.reference.gst_states import STATE_CODES
from worker.testing.sandbox.refrens.errors import FeathersError

INVOICE_TYPES = ("INVOICE", "BOS")
PARTY_FIELDS = (
    "name",
    "street",
    "city",
    "pincode",
    "gstState",
    "state",
    "country",
    "panNumber",
    "gstin",
    "phone",
    "email",
)
ITEM_FIELDS = ("name", "rate", "quantity", "gstRate", "taxRate", "hsn", "description")
PAISE = Decimal("0.01")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    path: str
    message: str
    kind: str
    value: Any = None

    def as_json(self) -> dict[str, Any]:
        name = "CastError" if self.kind in ("Number", "date") else "ValidatorError"
        body = {"message": self.message, "name": name, "kind": self.kind, "path": self.path}
        return body if self.value is None else {**body, "value": self.value}


def validate(body: Mapping[str, Any]) -> None:
    """``FeathersError(400)`` listing every problem of the body, or nothing."""
    problems = [*_header_problems(body), *_party_problems(body.get("billedTo"))]
    problems.extend(_item_problems(body.get("items")))
    if problems:
        message = "Invoice validation failed: " + ", ".join(
            f"{p.path}: {p.message}" for p in problems
        )
        raise FeathersError(400, message, errors={p.path: p.as_json() for p in problems})


def party(value: Any) -> dict[str, Any]:
    """The stored ``billedTo``/``billedBy``: schema keys only (strict mode drops the rest)."""
    given = value if isinstance(value, dict) else {}
    return {key: given[key] for key in PARTY_FIELDS if key in given}


def priced_items(body: Mapping[str, Any], ids: list[str]) -> list[dict[str, Any]]:
    """The stored items with their computed amounts, as in the document's answer."""
    taxed = body.get("invoiceType", "INVOICE") != "BOS"
    items = []
    for entry, item_id in zip(body["items"], ids, strict=True):
        rate, quantity = _number(entry["rate"]), _number(entry["quantity"])
        gst = _number(entry.get("gstRate", entry.get("taxRate"))) if taxed else None
        amount = rate * quantity
        tax = amount * (gst or 0) / 100
        stored = {key: entry[key] for key in ITEM_FIELDS if key in entry}
        items.append(
            {
                "discount": {"discountType": "PERCENTAGE"},
                "images": [],
                "_id": item_id,
                **stored,
                "rate": _json(rate),
                "quantity": _json(quantity),
                "igst": _paise(tax),
                "cgst": _paise(tax / 2),
                "sgst": _paise(tax / 2),
                "subTotal": _paise(amount),
                "amount": _paise(amount),
                "total": _paise(amount + tax),
            }
        )
    return items


def final_total(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``finalTotal``: the items' figures summed (each already in paise)."""
    keys = ("total", "amount", "subTotal", "igst", "cgst", "sgst")
    sums = {key: sum((Decimal(str(item[key])) for item in items), Decimal(0)) for key in keys}
    return {**{key: _json(value) for key, value in sums.items()}, "discount": 0}


def parse_date(value: Any) -> datetime | None:
    """An ISO 8601 string as a datetime (naive means UTC), or None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _header_problems(body: Mapping[str, Any]) -> list[Problem]:
    problems = []
    kind = body.get("invoiceType")
    if kind is not None and kind not in INVOICE_TYPES:
        problems.append(_enum("invoiceType", kind))
    currency = body.get("currency")
    if currency is not None and not (isinstance(currency, str) and _CURRENCY.match(currency)):
        problems.append(_enum("currency", currency))
    for path in ("invoiceDate", "dueDate"):
        value = body.get(path)
        if value is not None and parse_date(value) is None:
            message = f'Cast to date failed for value "{value}" at path "{path}"'
            problems.append(Problem(path=path, message=message, kind="date", value=value))
    return problems


def _party_problems(billed_to: Any) -> list[Problem]:
    given = billed_to if isinstance(billed_to, dict) else {}
    problems = []
    for key in ("name", "country"):
        if not _text(given.get(key)):
            problems.append(_required(f"billedTo.{key}"))
    country = given.get("country")
    if _text(country) and country not in COUNTRY_NAMES:
        problems.append(_enum("billedTo.country", country))
    state = given.get("gstState")
    if country == "IN" and not _text(state):
        problems.append(_required("billedTo.gstState"))
    elif country == "IN" and state not in STATE_CODES:
        problems.append(_enum("billedTo.gstState", state))
    return problems


def _item_problems(items: Any) -> list[Problem]:
    if not isinstance(items, list) or not items:
        return [_required("items")]
    problems = []
    for index, entry in enumerate(items):
        given = entry if isinstance(entry, dict) else {}
        if not _text(given.get("name")):
            problems.append(_required(f"items.{index}.name"))
        for key in ("rate", "quantity", "gstRate", "taxRate"):
            problems.extend(_number_problems(f"items.{index}.{key}", given, key))
    return problems


def _number_problems(path: str, given: Mapping[str, Any], key: str) -> list[Problem]:
    required = key in ("rate", "quantity")
    if key not in given or given[key] is None:
        return [_required(path)] if required else []
    try:
        value = _number(given[key])
    except ValueError:
        message = f'Cast to Number failed for value "{given[key]}" at path "{key}"'
        return [Problem(path=path, message=message, kind="Number", value=given[key])]
    if value < 0:
        message = f"Path `{key}` ({given[key]}) is less than minimum allowed value (0)."
        return [Problem(path=path, message=message, kind="min", value=given[key])]
    return []


def _required(path: str) -> Problem:
    return Problem(path=path, message=f"Path `{path}` is required.", kind="required")


def _enum(path: str, value: Any) -> Problem:
    message = f"`{value}` is not a valid enum value for path `{path}`."
    return Problem(path=path, message=message, kind="enum", value=value)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _number(value: Any) -> Decimal:
    """A JSON number or numeric string (mongoose casts those); ``ValueError`` otherwise."""
    if value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(value)  # noqa: TRY004 -- callers catch one error for "not a number"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(value) from None
    if not number.is_finite():
        raise ValueError(value)
    return number


def _paise(value: Decimal) -> int | float:
    return _json(value.quantize(PAISE, ROUND_HALF_UP))


def _json(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
