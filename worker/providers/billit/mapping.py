"""The canonical invoice as Billit's ``POST /v1/invoices`` body (pure, no I/O).

Every canonical field has a place or a stated reason not to:

- ``type`` → ``invoiceTypeId``: the account's ``invoice_type_id`` for ``invoice``, its
  ``invoice_type_ids[type]`` for the others; ``provider_options.invoiceTypeId`` wins over both.
  A type with no id anywhere is refused before sending.
- ``number``: Billit numbers invoices itself per series and has no number field, so ours is
  not sent; the idempotency key travels as a tag instead (``tag_for``), which is what makes a
  retry after an unknown outcome safe (the adapter scans for it).
- ``issue_date`` → ``invoiceDate`` (``Y-m-d``; today when absent, as Billit requires one);
  ``due_date`` → ``dateExpires``.
- ``customer`` → ``customerId`` (resolved or created by ``worker.providers.billit.customers``).
- ``lines`` → ``products[]``: ``details`` (name, then the description on its own line),
  ``vatId`` (the account's vat whose ``value`` is the line's ``tax_rate``; no rate means 0%),
  ``price`` (Billit prices are net of VAT: a price that includes tax is divided by
  1 + rate, to 4 decimal places), ``quantity``, ``discount`` (a percent discount as is; an
  amount discount per unit is taken off the price, which keeps the total exact where a
  converted percentage would not), ``measurementUnit`` (the account option).
- ``charges`` → extra ``products[]`` rows (quantity 1, their amount as the net price).
- ``amount_paid`` → ``isPaid`` and ``paymentMethod`` when it covers the total (computed here
  from the canonical form, to the cent). Billit records paid or unpaid only: a partial payment
  leaves the invoice unpaid, to be recorded in Billit by hand. This never changes the document
  itself, unlike dropping a discount would, which is why it is not refused.
- ``discount`` (invoice level): Billit has no such field; a non-zero one is refused (put it on
  the lines). ``currency``: no field either; an invoice in another currency than the
  account's is refused. ``hsn``, ``product_id`` and ``notes`` have no documented Billit field
  and are dropped (``provider_options`` can carry any field Billit takes).
- ``provider_options`` → merged into the body last, adding fields the canonical form lacks
  (e.g. ``mydataInvoiceType``). They may not touch a field the mapping writes
  (``OPTION_RULES``): ``tags`` above all, since our tag is what makes a retry safe, and the
  customer, products and payment, which the tag scan matches on. Such an invoice is refused.
  ``invoiceTypeId`` and ``sendMail`` are defaults an option may replace.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from worker.invoice import Charge, Invoice, Line
from worker.outcome import DeadLetter, Reason
from worker.providers.base import (
    OptionConflict,
    OptionRules,
    check_options,
    json_number,
    merge_options,
)
from worker.providers.billit.account import AccountFacts
from worker.providers.billit.options import BillitId, BillitOptions

TAG_PREFIX = "invoice-sync:"
HASHED_PREFIX = "sha256:"
# Keys this short and plain travel verbatim, so a person (and the sandbox profile) can read
# them back; anything else is hashed to a fixed, tag-safe length.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9._:@/+-]{1,64}$")
PRICE_PLACES = Decimal("0.0001")
CENT = Decimal("0.01")
# Every field the mapping writes, whether or not it writes it for this invoice: the body has no
# nested objects, and each of these identifies, prices or dates the document.
OPTION_RULES = OptionRules(
    owned=frozenset(
        {
            "invoiceDate",
            "dateExpires",
            "customerId",
            "billerId",
            "products",
            "isPaid",
            "paymentMethod",
            "tags",
        }
    ),
    replaceable={"invoiceTypeId": (int, str), "sendMail": (bool,)},
)


def tag_for(idempotency_key: str) -> str:
    """The tag that marks an invoice as the one created for ``idempotency_key``.

    Deterministic, so every attempt and every replica computes the same tag; at most 77
    characters whatever the key's length.
    """
    if _PLAIN_KEY.match(idempotency_key) and not idempotency_key.startswith(HASHED_PREFIX):
        return TAG_PREFIX + idempotency_key
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return TAG_PREFIX + HASHED_PREFIX + digest


def key_of_tag(tag: str) -> str | None:
    """The idempotency key a tag carries verbatim, or None (not ours, or hashed)."""
    if not tag.startswith(TAG_PREFIX):
        return None
    key = tag.removeprefix(TAG_PREFIX)
    return None if key.startswith(HASHED_PREFIX) else key


def invoice_type_id(invoice: Invoice, options: BillitOptions) -> BillitId | None:
    """The ``invoiceTypeId`` this invoice is sent with, or None when nothing names one."""
    override = invoice.provider_options.get("invoiceTypeId")
    if override is not None:
        return override  # type: ignore[no-any-return]
    if invoice.type == "invoice":
        return options.invoice_type_id
    return options.invoice_type_ids.get(invoice.type)


def refuse_unsupported(invoice: Invoice, options: BillitOptions) -> DeadLetter | None:
    """A dead letter for an invoice Billit cannot represent faithfully, else None (no I/O)."""
    problem = _unsupported(invoice, options)
    if problem is None:
        return None
    return DeadLetter(reason=Reason.INVALID_PAYLOAD, error=problem)


def _unsupported(invoice: Invoice, options: BillitOptions) -> str | None:
    try:
        # Every key the mapping writes is owned, so no body is needed to check against.
        check_options({}, invoice.provider_options, OPTION_RULES)
    except OptionConflict as exc:
        return str(exc)
    if invoice.currency is not None and invoice.currency != options.currency:
        return (
            f"currency: this Billit account bills in {options.currency} and Billit's invoice "
            f"has no currency field; got {invoice.currency}"
        )
    if invoice.discount:
        return "discount: Billit has no invoice-level discount; put the discount on the lines"
    if invoice_type_id(invoice, options) is None:
        return (
            f"type {invoice.type!r}: no Billit invoiceTypeId for it; set invoice_type_id"
            " (or invoice_type_ids) on the account, or provider_options.invoiceTypeId"
        )
    return None


def refuse_unmapped(invoice: Invoice, facts: AccountFacts) -> DeadLetter | None:
    """A dead letter when a line's or charge's tax rate has no vat id in the Billit account."""
    rates = [_rate(line.tax_rate) for line in invoice.lines]
    rates += [_rate(charge.tax_rate) for charge in invoice.charges]
    missing = sorted({rate for rate in rates if facts.vat_id(rate) is None})
    if not missing:
        return None
    known = ", ".join(f"{rate:f}%" for rate in sorted(facts.vats)) or "none"
    wanted = ", ".join(f"{rate:f}%" for rate in missing)
    return DeadLetter(
        reason=Reason.REJECTED,
        error=f"Billit has no vat for tax rate {wanted} in this account (its vats: {known})",
    )


def build_request(
    invoice: Invoice,
    *,
    facts: AccountFacts,
    options: BillitOptions,
    customer_id: BillitId | None,
    tag: str,
    today: date,
) -> dict[str, Any]:
    """The JSON body for ``POST /v1/invoices``; call both ``refuse_*`` functions first."""
    body: dict[str, Any] = {
        "invoiceDate": (invoice.issue_date or today).isoformat(),
        "invoiceTypeId": invoice_type_id(invoice, options),
    }
    if invoice.due_date is not None:
        body["dateExpires"] = invoice.due_date.isoformat()
    if customer_id is not None:
        body["customerId"] = customer_id
    if facts.biller_id is not None:
        body["billerId"] = facts.biller_id
    body["products"] = [product(line, facts, options) for line in invoice.lines]
    body["products"] += [charge_product(charge, facts, options) for charge in invoice.charges]
    if is_paid(invoice):
        body["isPaid"] = True
        method = options.payment_method_id or next(iter(facts.payment_methods), None)
        if method is not None:
            body["paymentMethod"] = [method]
    body["tags"] = [tag]
    body["sendMail"] = options.send_mail
    return merge_options(body, invoice.provider_options, OPTION_RULES)


def product(line: Line, facts: AccountFacts, options: BillitOptions) -> dict[str, Any]:
    """One ``products[]`` row for a line."""
    rate = _rate(line.tax_rate)
    price = line.unit_price
    if line.discount and line.discount_type == "amount":
        price = max(Decimal(0), price - line.discount)
    item: dict[str, Any] = {
        "details": f"{line.name}\n{line.description}" if line.description else line.name,
        "vatId": facts.vat_id(rate),
        "price": json_number(net_price(price, rate, includes_tax=line.price_includes_tax)),
        "quantity": json_number(line.quantity),
    }
    if line.discount and line.discount_type == "percent":
        item["discount"] = json_number(line.discount)
    if options.measurement_unit is not None:
        item["measurementUnit"] = options.measurement_unit
    return item


def charge_product(charge: Charge, facts: AccountFacts, options: BillitOptions) -> dict[str, Any]:
    """A charge as a ``products[]`` row: Billit has no separate charges."""
    item: dict[str, Any] = {
        "details": charge.name,
        "vatId": facts.vat_id(_rate(charge.tax_rate)),
        "price": json_number(charge.amount),
        "quantity": 1,
    }
    if options.measurement_unit is not None:
        item["measurementUnit"] = options.measurement_unit
    return item


def is_paid(invoice: Invoice) -> bool:
    """Whether ``amount_paid`` covers the whole invoice (a cent of rounding allowed)."""
    paid = invoice.amount_paid
    return bool(paid) and paid is not None and paid >= gross_total(invoice) - CENT


def net_price(price: Decimal, rate: Decimal, *, includes_tax: bool) -> Decimal:
    """The unit price before VAT, as Billit takes it."""
    if not includes_tax or not rate:
        return price
    return (price * 100 / (100 + rate)).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def gross_total(invoice: Invoice) -> Decimal:
    """The invoice total including VAT, to the cent, as computed from the canonical form."""
    total = Decimal(0)
    for line in invoice.lines:
        rate = _rate(line.tax_rate)
        unit = line.unit_price
        if line.discount and line.discount_type == "amount":
            unit = max(Decimal(0), unit - line.discount)
        gross_unit = unit if line.price_includes_tax else unit * (100 + rate) / 100
        share = 1 - line.discount / 100 if line.discount_type == "percent" else Decimal(1)
        total += gross_unit * line.quantity * share
    for charge in invoice.charges:
        total += charge.amount * (100 + charge.tax_rate) / 100
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def _rate(rate: Decimal | None) -> Decimal:
    return (rate or Decimal(0)).normalize()
