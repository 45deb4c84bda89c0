"""How the BillClap sandbox prices an invoice: the server-side totals BillClap documents.

- A line's price is per unit. ``With Tax`` (the default) means the price includes GST, so the
  taxable value is ``net * 100 / (100 + gst)``; ``Without Tax`` adds GST on top.
- ``discount_type`` ``RS`` (the default) is a rupee discount per unit; any other value is a
  percentage of the unit price. The discount comes off the price as entered, before tax is
  taken out or added.
- An additional charge counts only when it has both ``chargeValue`` and ``tax``; its GST is
  added on top of the value.
- ``additional_discount`` comes off the grand total; ``autoRoundOffChecked`` rounds the total to
  the nearest rupee and reports ``round_off_amount``.
- ``receive_amount`` defaults to 0, or to the whole total for a cash sale, and may not exceed
  the total.

Amounts are exact ``Decimal`` until the total is rounded to paise (half up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

PAISE = Decimal("0.01")
ZERO = Decimal(0)


class BillClapRefusal(Exception):  # noqa: N818 - it is BillClap's answer, not our failure
    """A request BillClap refuses in its handler: HTTP 500 ``{"status": false, "error": ...}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def decimal_or_none(value: Any) -> Decimal | None:
    """A JSON number or numeric string as a Decimal; None when absent or empty."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise BillClapRefusal(f"Invalid number: {str(value)[:50]}") from None
    if not number.is_finite():
        raise BillClapRefusal(f"Invalid number: {str(value)[:50]}")
    return number


@dataclass(frozen=True, kw_only=True, slots=True)
class Priced:
    """One billable line with everything its amounts depend on."""

    price: Decimal
    gst: Decimal
    with_tax: bool
    quantity: Decimal
    percent: bool
    discount: Decimal

    @classmethod
    def of(
        cls, entry: Mapping[str, Any], *, price: Decimal, gst: Decimal, with_tax: bool
    ) -> Priced:
        """The line from a ``product_details`` entry; ``price``/``gst``/``with_tax`` are the
        values to use when the entry does not give them (the catalog's)."""
        tax_type = entry.get("product_sell_price_tax_type")
        quantity = decimal_or_none(entry.get("product_quantity"))
        discount_type = entry.get("discount_type")
        return cls(
            price=_given(decimal_or_none(entry.get("product_sell_price")), price),
            gst=_given(decimal_or_none(entry.get("product_gst")), gst),
            with_tax=with_tax if tax_type is None else str(tax_type).casefold() != "without tax",
            quantity=Decimal(1) if quantity is None else quantity,
            percent=discount_type is not None and str(discount_type).upper() != "RS",
            discount=decimal_or_none(entry.get("product_discount")) or ZERO,
        )

    def amounts(self) -> tuple[Decimal, Decimal, Decimal]:
        """``(taxable, tax, discount)`` for the whole line."""
        unit_discount = self.price * self.discount / 100 if self.percent else self.discount
        net = self.price - unit_discount
        if net < 0:
            raise BillClapRefusal("Discount can not be greater than product price")
        if self.with_tax:
            taxable = net * 100 / (100 + self.gst)
            tax = net - taxable
        else:
            taxable, tax = net, net * self.gst / 100
        return taxable * self.quantity, tax * self.quantity, unit_discount * self.quantity


@dataclass(frozen=True, kw_only=True, slots=True)
class Totals:
    taxable_amount: Decimal
    total_tax: Decimal
    total_discount: Decimal
    charges: Decimal
    round_off_amount: Decimal
    total_amount: Decimal
    receive_amount: Decimal

    def as_json(self) -> dict[str, float]:
        return {
            name: float(getattr(self, name).quantize(PAISE, ROUND_HALF_UP))
            for name in self.__slots__
        }


def compute_totals(lines: Sequence[Priced], body: Mapping[str, Any], *, cash_sale: bool) -> Totals:
    """The invoice's totals, or ``BillClapRefusal`` when ``receive_amount`` exceeds the total."""
    taxable = tax = discount = ZERO
    for line in lines:
        line_taxable, line_tax, line_discount = line.amounts()
        taxable, tax, discount = taxable + line_taxable, tax + line_tax, discount + line_discount
    charges = _charges(body.get("additional_charges"))
    additional = decimal_or_none(body.get("additional_discount")) or ZERO
    total = (taxable + tax + charges - additional).quantize(PAISE, ROUND_HALF_UP)
    round_off = ZERO
    if body.get("autoRoundOffChecked") is True:
        rounded = total.quantize(Decimal(1), ROUND_HALF_UP)
        round_off, total = rounded - total, rounded
    received = decimal_or_none(body.get("receive_amount"))
    if received is None:
        received = total if cash_sale else ZERO
    if received > total:
        raise BillClapRefusal("Received amount can not be greater than invoice total amount")
    return Totals(
        taxable_amount=taxable,
        total_tax=tax,
        total_discount=discount + additional,
        charges=charges,
        round_off_amount=round_off,
        total_amount=total,
        receive_amount=received,
    )


def _charges(entries: Any) -> Decimal:
    """Charge values plus their GST; entries without both ``chargeValue`` and ``tax`` are ignored."""
    total = ZERO
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        value = decimal_or_none(entry.get("chargeValue"))
        rate = decimal_or_none(entry.get("tax"))
        if value is not None and rate is not None:
            total += value + value * rate / 100
    return total


def _given(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value
