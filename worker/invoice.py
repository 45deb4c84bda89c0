"""The canonical invoice: the provider-neutral document producers write to the outbox (version 1).

Money and quantities arrive as JSON numbers or decimal strings and are held as ``Decimal``, so
``0.1 + 0.2`` never reaches a tax document. Every object refuses unknown keys: a typo such as
``"unit_prise"`` must fail loudly, not silently drop a price. Size limits bound what a hostile or
broken producer can make the worker hold in memory or send on.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

# 15 significant digits survive a round trip through a JSON float exactly, which is what the
# providers' JSON bodies carry; 4 decimal places cover paise, cents and fractional quantities.
Money = Annotated[Decimal, Field(ge=0, max_digits=15, decimal_places=4, allow_inf_nan=False)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=15, decimal_places=4, allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(ge=0, le=100, max_digits=7, decimal_places=4, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=500)]
Text = Annotated[str, Field(max_length=5000)]
Short = Annotated[str, Field(max_length=200)]
ProviderId = Annotated[str, Field(min_length=1, max_length=100)] | Annotated[int, Field(ge=0)]

InvoiceType = Literal[
    "invoice",
    "quotation",
    "credit_note",
    "purchase_bill",
    "purchase_return",
    "delivery_challan",
    "sales_order",
    "purchase_order",
]

SCHEMA_VERSION = 1
MAX_LINES = 1000
MAX_PAYLOAD_BYTES = 256 * 1024
"""The most a payload may take as JSON text (UTF-8 bytes, as PostgreSQL writes jsonb): the
outbox's CHECK constraint (migration 006), ``invoice-sync enqueue`` and the claim enforce it."""
MAX_OPTION_TEXT = 1000
"""The longest string (key or value, at any depth) in ``provider_options``, in characters."""
MAX_OPTIONS_BYTES = 16 * 1024
"""The most ``provider_options`` may take as JSON text: they add a few fields, not documents."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Address(_Strict):
    street: Short | None = None
    city: Short | None = None
    state: Short | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: (
        Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")] | None
    ) = None


class Customer(_Strict):
    id: ProviderId | None = Field(default=None, description="The provider's id for this customer.")
    name: Name | None = None
    phone: Annotated[str, Field(max_length=30)] | None = None
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    tax_id: Annotated[str, Field(max_length=30)] | None = None
    address: Address | None = None


class Line(_Strict):
    name: Name
    description: Text | None = None
    quantity: Quantity
    unit_price: Money
    tax_rate: Rate | None = None
    price_includes_tax: StrictBool = Field(
        default=True, description="Whether unit_price already includes tax (BillClap's default)."
    )
    hsn: Annotated[str, Field(max_length=20)] | None = None
    discount: Money = Decimal(0)
    discount_type: Literal["amount", "percent"] = Field(
        default="amount",
        description="amount: per unit, in the invoice currency; percent: of the price.",
    )
    product_id: ProviderId | None = None

    @model_validator(mode="after")
    def _percent_at_most_100(self) -> Line:
        if self.discount_type == "percent" and self.discount > 100:
            raise ValueError("a percent discount cannot exceed 100")
        return self


class Charge(_Strict):
    name: Name
    amount: Money
    tax_rate: Rate = Decimal(0)
    hsn: Annotated[str, Field(max_length=20)] | None = None


class Invoice(_Strict):
    """One invoice as a producer writes it to ``invoice_sync.outbox.payload``."""

    type: InvoiceType = "invoice"
    number: Annotated[str, Field(min_length=1, max_length=60)] | None = Field(
        default=None,
        description="Your invoice number. Send one: it is what makes a retry safe at BillClap and Refrens.",
    )
    issue_date: date | None = None
    due_date: date | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")] | None = None
    customer: Customer | None = None
    cash_sale: StrictBool = False
    lines: Annotated[list[Line], Field(min_length=1, max_length=MAX_LINES)]
    # A factory, not a list: pydantic deep-copies a mutable default for every invoice that
    # leaves it out (a sixth of the validation of a small invoice); the schema still says [].
    charges: Annotated[list[Charge], Field(max_length=100)] = Field(
        default_factory=list, json_schema_extra={"default": []}
    )
    discount: Money = Decimal(0)
    amount_paid: Money | None = None
    notes: Text | None = None
    provider_options: Annotated[dict[str, Any], Field(max_length=50)] = Field(
        default_factory=dict,
        description=(
            "Fields the canonical form lacks, added to the provider's request body. It may not "
            "touch a field the adapter writes (refused as invalid_payload). Each text at most "
            f"{MAX_OPTION_TEXT} characters, the whole at most {MAX_OPTIONS_BYTES} bytes of JSON."
        ),
    )

    @field_validator("provider_options")
    @classmethod
    def _options_bounded(cls, options: dict[str, Any]) -> dict[str, Any]:
        too_long = _overlong_text(options, "")
        if too_long is not None:
            raise ValueError(f"{too_long}: a text longer than {MAX_OPTION_TEXT} characters")
        size = len(json.dumps(options, ensure_ascii=False, default=str).encode("utf-8"))
        if size > MAX_OPTIONS_BYTES:
            raise ValueError(f"{size} bytes of JSON, over the limit of {MAX_OPTIONS_BYTES}")
        return options

    @model_validator(mode="after")
    def _customer_named_unless_cash_sale(self) -> Invoice:
        if not self.cash_sale and (self.customer is None or not self.customer.name):
            raise ValueError("customer.name is required unless cash_sale is true")
        return self


def _overlong_text(value: Any, path: str) -> str | None:
    """The path (``a.b.0``, ``-`` for the top) of the first string, key or value, longer than
    ``MAX_OPTION_TEXT``, or None."""
    if isinstance(value, str):
        return (path.rstrip(".") or "-") if len(value) > MAX_OPTION_TEXT else None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            if len(key) > MAX_OPTION_TEXT:
                return f"{path}{shown_key(key)} (the key)"
        items = ((shown_key(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    for step, item in items:
        found = _overlong_text(item, f"{path}{step}.")
        if found is not None:
            return found
    return None


def parse_invoice(payload: Any) -> Invoice:
    """Validate a payload as stored in the outbox (a dict, or JSON text).

    Raises ``pydantic.ValidationError``; callers turn it into ``invalid_payload``.
    """
    if isinstance(payload, str | bytes):
        return Invoice.model_validate_json(payload)
    return Invoice.model_validate(payload)


# A JSON escape of NUL that is not itself escaped; one in a bulk load would fail its whole chunk (``\\u0000`` is the text "\u0000", not NUL).
NUL_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
UNSTORABLE = "contains a NUL character (\\u0000), bytes that are not UTF-8 or an unpaired surrogate"


def storable_json(text: str) -> bool:
    """Whether PostgreSQL's jsonb can hold the JSON ``text``: valid UTF-8 (no unpaired
    surrogate, which is how undecodable input arrives), no NUL and no ``\\u0000`` escape."""
    if "\x00" in text or ("\\u0000" in text and NUL_ESCAPE.search(text)):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe_validation_error(exc: ValidationError, limit: int = 10) -> str:
    """pydantic's message, one line per problem, without echoing the (possibly huge) input."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(shown_key(part) for part in error["loc"]) or "payload"
        lines.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def shown_key(part: str | int) -> str:
    """A key or path step as it can be shown on one line (an unknown key may be any string):
    as it is when short and printable, else quoted and cut to 40 characters."""
    text = str(part)
    return text if len(text) <= 40 and text.isprintable() else repr(text[:40])


def json_schema() -> dict[str, Any]:
    """The JSON Schema producers can validate against before they write to the outbox."""
    schema = Invoice.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://invoice-sync.dev/schema/invoice/v{SCHEMA_VERSION}.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True)
