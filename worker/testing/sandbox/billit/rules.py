"""Billit's validation of create bodies, as Laravel's validator words it (pure, no I/O).

Each check returns ``{field: [message, ...]}``, empty when the body passes; a non-empty map is
answered 422 with it as ``errors``. Field names and messages follow Laravel's defaults ("The
company field is required.", "The selected vatId is invalid."), which is what Billit's API, a
Laravel application, sends. Unknown ids (invoice type, customer, vat, payment method, biller)
are 422s naming the field, as Billit's API specification says.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from worker.reference.countries import COUNTRY_NAMES

Errors = dict[str, list[str]]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CENT = Decimal("0.01")
TAG_LIMIT = 255


@dataclass(frozen=True, kw_only=True, slots=True)
class Known:
    """The ids an invoice may refer to."""

    invoice_types: Mapping[Any, Mapping[str, Any]]
    customers: Collection[Any]
    vats: Mapping[Any, Decimal]
    payment_methods: Collection[Any]
    billers: Collection[Any]


def customer_errors(body: Mapping[str, Any]) -> Errors:
    """``POST /v1/customers``: ``isCompany``, ``company``, ``customerType``, ``country``."""
    errors: Errors = {}
    if body.get("isCompany") is None:
        _add(errors, "isCompany", "The is company field is required.")
    elif not isinstance(body["isCompany"], bool):
        _add(errors, "isCompany", "The is company field must be true or false.")
    _required_text(errors, body, "company", "company")
    kind = body.get("customerType")
    if kind is None:
        _add(errors, "customerType", "The customer type field is required.")
    elif kind not in (1, 2, 3, 4) or isinstance(kind, bool):
        _add(errors, "customerType", "The selected customer type is invalid.")
    country = body.get("country")
    if country in (None, ""):
        _add(errors, "country", "The country field is required.")
    elif country not in COUNTRY_NAMES:
        _add(errors, "country", "The selected country is invalid.")
    email = body.get("email")
    if email is not None and not (isinstance(email, str) and _EMAIL.match(email)):
        _add(errors, "email", "The email must be a valid email address.")
    if body.get("lang") not in (None, "el", "en"):
        _add(errors, "lang", "The selected lang is invalid.")
    return errors


def invoice_errors(body: Mapping[str, Any], known: Known) -> Errors:
    """``POST /v1/invoices``: dates, ids, products, payment, tags."""
    errors: Errors = {}
    invoice_date = _date(errors, body, "invoiceDate", "invoice date", required=True)
    expires = _date(errors, body, "dateExpires", "date expires", required=False)
    if invoice_date and expires and expires < invoice_date:
        _add(
            errors, "dateExpires", "The date expires must be a date after or equal to invoice date."
        )
    kind = known.invoice_types.get(body.get("invoiceTypeId"))
    if body.get("invoiceTypeId") is None:
        _add(errors, "invoiceTypeId", "The invoice type id field is required.")
    elif kind is None:
        _add(errors, "invoiceTypeId", "The selected invoice type id is invalid.")
    _known_id(
        errors, body, "customerId", "customer id", known.customers, required=not _retail(kind)
    )
    _known_id(errors, body, "billerId", "biller id", known.billers, required=False)
    _products(errors, body.get("products"), known)
    _payment(errors, body, known)
    _tags(errors, body.get("tags"))
    if body.get("sendMail") is not None and not isinstance(body["sendMail"], bool):
        _add(errors, "sendMail", "The send mail field must be true or false.")
    return errors


def totals(products: list[Mapping[str, Any]], vats: Mapping[Any, Decimal]) -> dict[str, Decimal]:
    """Net, VAT and final amounts: each row's net and VAT rounded to the cent, then summed."""
    net = vat = Decimal(0)
    for row in products:
        share = 1 - (_number(row.get("discount")) or Decimal(0)) / 100
        price, quantity = _number(row["price"]), _number(row["quantity"])
        if price is None or quantity is None:
            raise ValueError("totals of an unvalidated product row")
        row_net = (price * quantity * share).quantize(CENT, rounding=ROUND_HALF_UP)
        net += row_net
        vat += (row_net * vats[row["vatId"]] / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return {"netAmount": net, "vatAmount": vat, "finalAmount": net + vat}


def _products(errors: Errors, products: Any, known: Known) -> None:
    if not isinstance(products, list) or not products:
        _add(errors, "products", "The products field is required.")
        return
    for index, row in enumerate(products):
        at = f"products.{index}"
        if not isinstance(row, dict):
            _add(errors, at, f"The {at} must be an array.")
            continue
        _required_text(errors, row, "details", f"{at}.details", key=f"{at}.details")
        _known_id(errors, row, "vatId", f"{at}.vatId", known.vats, required=True, key=f"{at}.vatId")
        _numeric(errors, row, "price", at, minimum=Decimal(0), required=True)
        _numeric(errors, row, "quantity", at, minimum=None, required=True)
        quantity = _number(row.get("quantity"))
        if quantity is not None and quantity <= 0:
            _add(errors, f"{at}.quantity", f"The {at}.quantity must be greater than 0.")
        _numeric(errors, row, "discount", at, minimum=Decimal(0), required=False)
        if (_number(row.get("discount")) or Decimal(0)) > 100:
            _add(errors, f"{at}.discount", f"The {at}.discount must not be greater than 100.")


def _payment(errors: Errors, body: Mapping[str, Any], known: Known) -> None:
    paid = body.get("isPaid")
    if paid is not None and not isinstance(paid, bool):
        _add(errors, "isPaid", "The is paid field must be true or false.")
    methods = body.get("paymentMethod")
    if methods is None:
        if paid is True:
            _add(
                errors,
                "paymentMethod",
                "The payment method field is required when is paid is true.",
            )
        return
    if not isinstance(methods, list):
        _add(errors, "paymentMethod", "The payment method must be an array.")
        return
    for index, method in enumerate(methods):
        if method not in known.payment_methods:
            _add(
                errors, f"paymentMethod.{index}", f"The selected paymentMethod.{index} is invalid."
            )


def _tags(errors: Errors, tags: Any) -> None:
    if tags is None:
        return
    if not isinstance(tags, list):
        _add(errors, "tags", "The tags must be an array.")
        return
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip():
            _add(errors, f"tags.{index}", f"The tags.{index} must be a string.")
        elif len(tag) > TAG_LIMIT:
            _add(
                errors,
                f"tags.{index}",
                f"The tags.{index} must not be greater than 255 characters.",
            )


def _date(
    errors: Errors, body: Mapping[str, Any], field: str, words: str, *, required: bool
) -> date | None:
    value = body.get(field)
    if value in (None, ""):
        if required:
            _add(errors, field, f"The {words} field is required.")
        return None
    try:
        parsed = date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None:
        _add(errors, field, f"The {words} does not match the format Y-m-d.")
    return parsed


def _known_id(
    errors: Errors,
    body: Mapping[str, Any],
    field: str,
    words: str,
    known: Collection[Any],
    *,
    required: bool,
    key: str | None = None,
) -> None:
    value = body.get(field)
    if value is None:
        if required:
            _add(errors, key or field, f"The {words} field is required.")
    elif isinstance(value, bool) or value not in known:
        _add(errors, key or field, f"The selected {words} is invalid.")


def _required_text(
    errors: Errors, body: Mapping[str, Any], field: str, words: str, *, key: str | None = None
) -> None:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        _add(errors, key or field, f"The {words} field is required.")
    elif len(value) > 5000:
        _add(errors, key or field, f"The {words} must not be greater than 5000 characters.")


def _numeric(
    errors: Errors,
    row: Mapping[str, Any],
    field: str,
    at: str,
    *,
    minimum: Decimal | None,
    required: bool,
) -> None:
    key, value = f"{at}.{field}", row.get(field)
    if value is None:
        if required:
            _add(errors, key, f"The {key} field is required.")
        return
    number = _number(value)
    if number is None:
        _add(errors, key, f"The {key} must be a number.")
    elif minimum is not None and number < minimum:
        _add(errors, key, f"The {key} must be at least {minimum}.")


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _retail(kind: Mapping[str, Any] | None) -> bool:
    return bool(kind and kind.get("retail"))


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)
