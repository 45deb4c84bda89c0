"""The canonical invoice as Refrens' ``POST /businesses/{urlKey}/invoices`` body (pure, no I/O).

Every canonical field has a place or a stated reason not to:

- ``type``: ``invoice`` → ``invoiceType`` ``INVOICE`` (a tax invoice). Refrens' only other
  type is ``BOS`` (bill of supply, without tax), a fact about the seller's registration rather
  than the invoice, so it is chosen with ``provider_options: {"invoiceType": "BOS"}``. The
  other canonical types (quotation, credit note, purchase documents, ...) have no Refrens
  invoice type and are refused before sending.
- ``number`` → ``invoiceNumber``; ``issue_date``/``due_date`` → ``invoiceDate``/``dueDate`` as
  ISO 8601 dates; ``currency`` → ``currency`` (Refrens defaults to INR).
- ``customer`` → ``billedTo``: ``name``, ``street``, ``city`` (not in the request table but in
  every answer), ``pincode``, ``state``, ``country`` (alpha-2, required), ``phone``, ``email``.
  For an Indian customer ``tax_id`` → ``gstin`` and ``gstState`` (required there) comes from the
  GSTIN's first two digits, else from the state's name (``worker.reference.gst_states``). A non-Indian
  ``tax_id`` has no Refrens field (``gstin`` is "India only") and is dropped. ``panNumber``
  comes through ``provider_options.billedTo.panNumber``. ``customer.id`` has no request field.
- ``cash_sale`` without a customer → ``billedTo.name`` "Cash Sale" (Refrens requires a name).
- ``lines`` → ``items``: ``name``, ``rate``, ``quantity``, ``gstRate``, plus ``hsn`` and
  ``description`` (undocumented, likely item fields; Refrens' schema drops keys it lacks).
  Refrens' ``rate`` is the unit price before tax (its example: rate 100, 18% → total 118), so
  a tax-inclusive price is converted, to 6 decimal places so that rate x quantity x (1 + tax)
  lands on the producer's amount to the paisa. A line discount is folded into the rate: the
  request has no documented discount field, and a guessed one that Refrens ignored would
  overcharge the customer.
- ``charges`` → extra ``items`` (quantity 1, the charge's tax rate and HSN): Refrens has no
  additional charges, and as items they count in its totals exactly as they should.
- ``discount`` (invoice level, off the grand total as at BillClap) has no documented request
  field either (only ``discountType`` shows in answers). It is spread over every item as one
  percentage, ``discount / gross total``, taken off each rate: the total then falls by exactly
  the discount (to the paisa), and each line's tax falls with its taxable value, which is how a
  discount agreed at sale is taxed under GST. A discount above the gross total is refused.
- ``amount_paid``: payments are recorded separately at Refrens; the invoice is created unpaid.
- ``notes``: no documented field; dropped. ``contact`` is the business's own contact block and
  ``email`` asks Refrens to mail the invoice: both only through ``provider_options``.
- ``provider_options`` → merged into the body last, adding fields the canonical form lacks
  (``email``, ``contact``, ``billedTo.panNumber``, or a ``billedTo`` field the customer left
  out). They may not touch a field the mapping writes (``OPTION_RULES``): an
  ``{"invoiceNumber": null}`` would send a numberless invoice, whose retry after a timeout
  creates a second tax document. Such an invoice is refused. ``invoiceType``,
  ``billedTo.country`` and ``billedTo.gstState`` may be replaced (with a string).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from worker.invoice import Charge, Customer, Invoice, Line
from worker.outcome import DeadLetter, Reason
from worker.providers.base import (
    OptionConflict,
    OptionRules,
    json_number,
    merge_options,
)
from worker.reference.gst_states import code_from_gstin, code_from_name

INVOICE_TYPES = {"invoice": "INVOICE"}
CASH_SALE = "Cash Sale"
INDIA = "IN"
RATE_PLACES = Decimal("0.000001")
# What identifies or prices the document is the mapping's, even where this invoice leaves it
# out; ``billedTo`` fields are the mapping's where it wrote them (see ``OptionRules``). The
# customer's country and GST state (its place of supply) are documented as given through
# options too: the canonical form has them only as an address and a GSTIN.
OPTION_RULES = OptionRules(
    owned=frozenset({"invoiceNumber", "invoiceDate", "dueDate", "currency", "items"}),
    replaceable={
        "invoiceType": (str,),
        "billedTo.country": (str,),
        "billedTo.gstState": (str,),
    },
)


def refuse_unsupported(invoice: Invoice) -> DeadLetter | None:
    """A dead letter for an invoice Refrens cannot take as it is, else None; never sent."""
    problem = _unsupported(invoice)
    if problem is None:
        try:
            billed_to = build_request(invoice).get("billedTo")
        except OptionConflict as exc:
            return DeadLetter(reason=Reason.INVALID_PAYLOAD, error=str(exc))
        problem = _missing_customer_fields(billed_to if isinstance(billed_to, dict) else {})
    if problem is None:
        return None
    return DeadLetter(reason=Reason.INVALID_PAYLOAD, error=problem)


def sent_number(invoice: Invoice) -> str | None:
    """The invoice number the request for this invoice carries, or None: without one Refrens
    has nothing to refuse a repeat by nor to look it up with (None too when its options would
    be refused)."""
    try:
        number = build_request(invoice).get("invoiceNumber")
    except OptionConflict:
        return None
    return number if isinstance(number, str) and number.strip() else None


def build_request(invoice: Invoice) -> dict[str, Any]:
    """The JSON body for creating the invoice; call ``refuse_unsupported`` first."""
    return merge_options(mapped_body(invoice), invoice.provider_options, OPTION_RULES)


def mapped_body(invoice: Invoice) -> dict[str, Any]:
    """The body as the mapping writes it from the canonical invoice, before ``provider_options``."""
    body: dict[str, Any] = {}
    if invoice.number is not None:
        body["invoiceNumber"] = invoice.number
    if invoice.issue_date is not None:
        body["invoiceDate"] = invoice.issue_date.isoformat()
    if invoice.due_date is not None:
        body["dueDate"] = invoice.due_date.isoformat()
    body["invoiceType"] = INVOICE_TYPES.get(invoice.type, invoice.type)
    if invoice.currency is not None:
        body["currency"] = invoice.currency
    body["billedTo"] = billed_to(invoice.customer, cash_sale=invoice.cash_sale)
    factor = 1 - invoice.discount / gross_total(invoice) if invoice.discount else Decimal(1)
    body["items"] = [item(line, factor) for line in invoice.lines] + [
        charge_item(charge, factor) for charge in invoice.charges
    ]
    return body


def gross_total(invoice: Invoice) -> Decimal:
    """What the items come to with tax, before the invoice-level discount."""
    lines = sum(
        (unit_rate(line) * line.quantity * (100 + (line.tax_rate or 0)) / 100)
        for line in invoice.lines
    )
    charges = sum(charge.amount * (100 + charge.tax_rate) / 100 for charge in invoice.charges)
    return Decimal(lines) + Decimal(charges)


def billed_to(customer: Customer | None, *, cash_sale: bool) -> dict[str, Any]:
    """``billedTo`` from the customer; absent values are omitted, not sent as null."""
    if customer is None:
        return {"name": CASH_SALE} if cash_sale else {}
    address = customer.address
    country = address.country if address else None
    indian = country == INDIA
    fields: dict[str, Any] = {
        "name": customer.name or (CASH_SALE if cash_sale else None),
        "street": address and address.street,
        "city": address and address.city,
        "pincode": address and address.postal_code,
        "state": address and address.state,
        "gstState": gst_state(customer) if indian else None,
        "country": country,
        "gstin": customer.tax_id if indian else None,
        "phone": customer.phone,
        "email": customer.email,
    }
    return {key: value for key, value in fields.items() if value not in (None, "")}


def gst_state(customer: Customer) -> str | None:
    """The customer's GST state code: the GSTIN's, else the state name's, else None."""
    state = customer.address.state if customer.address else None
    return code_from_gstin(customer.tax_id) or code_from_name(state)


def item(line: Line, factor: Decimal = Decimal(1)) -> dict[str, Any]:
    """One ``items`` entry; ``rate`` is the unit price after discounts and before tax
    (``factor`` is what the invoice-level discount leaves of every rate)."""
    entry: dict[str, Any] = {
        "name": line.name,
        "rate": json_number(_rounded(unit_rate(line) * factor)),
        "quantity": json_number(line.quantity),
    }
    if line.tax_rate is not None:
        entry["gstRate"] = json_number(line.tax_rate)
    if line.hsn:
        entry["hsn"] = line.hsn
    if line.description:
        entry["description"] = line.description
    return entry


def unit_rate(line: Line) -> Decimal:
    """The exact pre-tax unit price net of the line's discount (``refuse_unsupported`` has
    made sure the discount does not exceed the price)."""
    if line.discount_type == "percent":
        net = line.unit_price * (100 - line.discount) / 100
    else:
        net = line.unit_price - line.discount
    if line.price_includes_tax and line.tax_rate:
        net = net * 100 / (100 + line.tax_rate)
    return net


def charge_item(charge: Charge, factor: Decimal = Decimal(1)) -> dict[str, Any]:
    """A charge as an item of quantity 1; its amount is before tax, as on every provider."""
    entry: dict[str, Any] = {
        "name": charge.name,
        "rate": json_number(_rounded(charge.amount * factor)),
        "quantity": 1,
        "gstRate": json_number(charge.tax_rate),
    }
    if charge.hsn:
        entry["hsn"] = charge.hsn
    return entry


def _unsupported(invoice: Invoice) -> str | None:
    if invoice.type not in INVOICE_TYPES:
        return (
            f"type: Refrens has no {invoice.type!r} document; it creates invoices only "
            "(type 'invoice'; a bill of supply with provider_options.invoiceType = 'BOS')"
        )
    for index, line in enumerate(invoice.lines):
        if line.discount_type == "amount" and line.discount > line.unit_price:
            return f"lines.{index}.discount: the discount exceeds the unit price"
    if invoice.discount and invoice.discount > gross_total(invoice):
        return "discount: the discount exceeds the invoice's total"
    return None


def _rounded(rate: Decimal) -> Decimal:
    # Six places keep rate x quantity x (1 + tax) on the intended amount to the paisa.
    return rate.quantize(RATE_PLACES, ROUND_HALF_UP)


def _missing_customer_fields(billed_to: dict[str, Any]) -> str | None:
    # Refrens refuses these; checked after provider_options are merged, which may supply them.
    if not billed_to.get("name"):
        return "customer.name: Refrens requires the customer's name (billedTo.name)"
    if not billed_to.get("country"):
        return (
            "customer.address.country: Refrens requires the customer's country (ISO 3166-1 "
            "alpha-2); give it, or provider_options.billedTo.country"
        )
    if billed_to.get("country") == INDIA and not billed_to.get("gstState"):
        return (
            "customer: Refrens requires the GST state code of an Indian customer; give a GSTIN "
            "in customer.tax_id, an Indian state in customer.address.state, or "
            "provider_options.billedTo.gstState"
        )
    return None
