"""The canonical invoice as BillClap's ``create-invoice`` request body (pure, no I/O).

Every canonical field has a place or a stated reason not to:

- ``type`` → one of BillClap's document types (all eight canonical types exist there).
- ``number`` → ``invoice_number``; ``issue_date``/``due_date`` → ``YYYY-MM-DD``.
- ``amount_paid`` → ``receive_amount``; ``discount`` → ``additional_discount`` (omitted at 0).
- ``customer`` → ``party_detail``: ``id`` → ``party_id`` (an int when all digits), ``name``,
  ``phone`` → ``mobile_no`` (separators stripped; ``+91`` and ten digits → the ten digits, as
  BillClap's own example writes Indian numbers), ``tax_id`` → ``gst_no``, the address fields,
  and ``country`` as an English name ("IN" → "India"). ``email`` has no BillClap field.
- ``cash_sale`` → ``party_detail.cash_sale`` (sent only when true).
- ``lines`` → ``product_details``; ``charges`` → ``additional_charges``.
- ``currency``: BillClap has no currency field and bills in rupees only, so an invoice in
  another currency is refused before sending (``refuse_unsupported``) rather than silently
  issued in INR.
- ``notes``: BillClap takes notes and terms from the business's invoice settings and has no
  request field for them, so they are dropped.
- ``provider_options`` → merged into the body last, adding fields the canonical form lacks
  (e.g. ``bank_id``, ``autoRoundOffChecked``). They may not touch a field the mapping writes
  (``OPTION_RULES``): ``{"invoice_number": null}`` would send a numberless invoice, whose
  retry after a timeout creates a second tax document. Such an invoice is refused.

Absent optional values are omitted rather than sent as ``null``: BillClap documents defaults
for missing fields, not for nulls.
"""

from __future__ import annotations

import re
from typing import Any

from worker.invoice import Charge, Customer, Invoice, Line
from worker.outcome import DeadLetter, Reason
from worker.providers.base import (
    OptionConflict,
    OptionRules,
    json_number,
    merge_options,
)
from worker.reference.countries import country_name

DOCUMENT_TYPES = {
    "invoice": "SALESINVOICE",
    "quotation": "QUOTATION",
    "credit_note": "SALESRETURN",
    "purchase_bill": "PURCHASEBILL",
    "purchase_return": "PURCHASERETURN",
    "delivery_challan": "DELIVERYCHALLAN",
    "sales_order": "SALEORDER",
    "purchase_order": "PURCHASEORDER",
}

# What identifies or prices the document is the mapping's, even where this invoice leaves it
# out; the other party fields are the mapping's where it wrote them (see ``OptionRules``).
OPTION_RULES = OptionRules(
    owned=frozenset(
        {
            "type",
            "issue_date",
            "due_date",
            "invoice_number",
            "receive_amount",
            "product_details",
            "additional_charges",
            "additional_discount",
            "party_detail.party_id",
            "party_detail.cash_sale",
        }
    )
)

_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_INDIAN_MOBILE = re.compile(r"^\+91(\d{10})$")


def refuse_unsupported(invoice: Invoice) -> DeadLetter | None:
    """A dead letter for an invoice BillClap cannot represent faithfully, else None.

    Refusing here keeps the invoice from ever being sent: an invoice in euros silently issued as
    rupees, or with a country BillClap would store as a meaningless code, is worse than none.
    """
    prepared = prepare(invoice)
    return prepared if isinstance(prepared, DeadLetter) else None


def prepare(invoice: Invoice) -> dict[str, Any] | DeadLetter:
    """``build_request``'s body, or ``refuse_unsupported``'s dead letter: both from one
    mapping of the invoice, which the adapter's per-attempt path would otherwise map twice."""
    refusal = _refuse_before_mapping(invoice)
    if refusal is not None:
        return refusal
    body = mapped_body(invoice)
    try:
        return merge_options(body, invoice.provider_options, OPTION_RULES)
    except OptionConflict as exc:
        return DeadLetter(reason=Reason.INVALID_PAYLOAD, error=str(exc))


def _refuse_before_mapping(invoice: Invoice) -> DeadLetter | None:
    if invoice.currency is not None and invoice.currency != "INR":
        return DeadLetter(
            reason=Reason.INVALID_PAYLOAD,
            error=f"currency: BillClap bills in INR only and has no currency field; "
            f"got {invoice.currency}",
        )
    country = _country_code(invoice.customer)
    if country is not None and country_name(country) is None:
        return DeadLetter(
            reason=Reason.INVALID_PAYLOAD,
            error=f"customer.address.country: {country!r} is not an ISO 3166-1 alpha-2 code",
        )
    return None


def sent_number(invoice: Invoice) -> str | None:
    """The invoice number the request for this invoice carries, or None: without one BillClap
    has nothing to refuse a repeat by (None too when its options would be refused)."""
    try:
        number = build_request(invoice).get("invoice_number")
    except OptionConflict:
        return None
    return number if isinstance(number, str) and number.strip() else None


def build_request(invoice: Invoice) -> dict[str, Any]:
    """The JSON body for ``create-invoice``; call ``refuse_unsupported`` first."""
    return merge_options(mapped_body(invoice), invoice.provider_options, OPTION_RULES)


def mapped_body(invoice: Invoice) -> dict[str, Any]:
    """The body as the mapping writes it from the canonical invoice, before ``provider_options``."""
    body: dict[str, Any] = {"type": DOCUMENT_TYPES[invoice.type]}
    if invoice.issue_date is not None:
        body["issue_date"] = invoice.issue_date.isoformat()
    if invoice.due_date is not None:
        body["due_date"] = invoice.due_date.isoformat()
    if invoice.number is not None:
        body["invoice_number"] = invoice.number
    if invoice.amount_paid is not None:
        body["receive_amount"] = json_number(invoice.amount_paid)
    body["party_detail"] = party_detail(invoice.customer, cash_sale=invoice.cash_sale)
    body["product_details"] = [product_detail(line) for line in invoice.lines]
    if invoice.charges:
        body["additional_charges"] = [additional_charge(charge) for charge in invoice.charges]
    if invoice.discount:
        body["additional_discount"] = json_number(invoice.discount)
    return body


def party_detail(customer: Customer | None, *, cash_sale: bool) -> dict[str, Any]:
    """``party_detail`` from the customer; a cash sale needs nothing but the flag."""
    detail: dict[str, Any] = {}
    if customer is not None:
        address = customer.address
        fields: dict[str, Any] = {
            "party_id": _provider_id(customer.id),
            "party_name": customer.name,
            "mobile_no": mobile_number(customer.phone),
            "gst_no": customer.tax_id,
            "address": address and address.street,
            "city": address and address.city,
            "state": address and address.state,
            "country": address and address.country and country_name(address.country),
            "pin_code": address and address.postal_code,
        }
        detail.update((key, value) for key, value in fields.items() if value not in (None, ""))
    if cash_sale:
        detail["cash_sale"] = True
    return detail


def mobile_number(phone: str | None) -> str | None:
    """The phone as BillClap matches parties by it: separators stripped, and an Indian
    ``+91`` number reduced to its ten digits (the form BillClap's example and app use)."""
    if phone is None:
        return None
    compact = _PHONE_SEPARATORS.sub("", phone)
    indian = _INDIAN_MOBILE.match(compact)
    return indian.group(1) if indian else compact or None


def product_detail(line: Line) -> dict[str, Any]:
    """One ``product_details`` entry. The price and GST are always sent, so BillClap can create
    the product when its catalog has no match, and a catalog match cannot change the price."""
    item: dict[str, Any] = {}
    if line.product_id is not None:
        item["product_id"] = _provider_id(line.product_id)
    item["product_name"] = line.name
    if line.description:
        item["product_description"] = line.description
    item["product_sell_price"] = json_number(line.unit_price)
    item["product_sell_price_tax_type"] = "With Tax" if line.price_includes_tax else "Without Tax"
    if line.tax_rate is not None:
        item["product_gst"] = json_number(line.tax_rate)
    if line.hsn:
        item["product_hsn"] = line.hsn
    item["product_quantity"] = json_number(line.quantity)
    if line.discount:
        item["discount_type"] = "RS" if line.discount_type == "amount" else "percentage"
        item["product_discount"] = json_number(line.discount)
    return item


def additional_charge(charge: Charge) -> dict[str, Any]:
    """One ``additional_charges`` entry; ``tax`` is always sent because BillClap ignores a
    charge without it."""
    item: dict[str, Any] = {
        "chargeName": charge.name,
        "chargeValue": json_number(charge.amount),
        "tax": json_number(charge.tax_rate),
    }
    if charge.hsn:
        item["hsn_code"] = charge.hsn
    return item


def _provider_id(value: str | int | None) -> str | int | None:
    # BillClap ids are numbers; a producer may hold them as strings.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _country_code(customer: Customer | None) -> str | None:
    if customer is None or customer.address is None:
        return None
    return customer.address.country
