"""The BillClap sandbox's business model: firms, parties, the product catalog, invoice totals.

No HTTP here: ``BillClapBooks.create_invoice`` takes the token's firm and the request body and
either returns the created invoice or raises ``BillClapRefusal`` with the message BillClap
documents. A request is validated in full before anything is written, because BillClap creates
an invoice inside one transaction: a refused request leaves no party, product or number behind.

Inside the handler the checks run in this order: party, products, totals and
``receive_amount``, duplicate number, credits; then the invoice is created. Totals follow the
documented rules (``worker.testing.sandbox.billclap.totals``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.testing.sandbox.billclap.totals import (
    BillClapRefusal,
    Priced,
    Totals,
    compute_totals,
    decimal_or_none,
)

CASH_SALE = "Cash Sale"

DOCUMENT_TYPES = frozenset(
    {
        "SALESINVOICE",
        "QUOTATION",
        "SALESRETURN",
        "PURCHASEBILL",
        "PURCHASERETURN",
        "DELIVERYCHALLAN",
        "ORDER",
        "PURCHASEORDER",
        "SELLORDER",
        "SALEORDER",
    }
)
SUPPLIER_TYPES = frozenset({"PURCHASEBILL", "PURCHASERETURN", "PURCHASEORDER"})


class BillClapSandboxOptions(BaseModel):
    """What a BillClap sandbox simulates; every key can change at runtime."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(default_factory=lambda: ["sandbox-token"])
    """API tokens; each is its own business (firm), with its own numbers, parties, catalog."""
    session_tokens: list[str] = Field(default_factory=lambda: ["sandbox-session-token"])
    """Valid tokens that are not API tokens: 401 "Invalid token type"."""
    expired_tokens: list[str] = Field(default_factory=lambda: ["sandbox-expired-token"])
    """Tokens past their 365 days: 401 "jwt expired"."""
    credits: int | None = Field(default=None, ge=0)
    """Invoice credits left (shared by all firms, like a plan); None is unlimited."""
    api_plan: bool = True
    """False: the plan lacks API integration (HTTP 200, status false)."""
    business_active: bool = True
    """False: every call answers 500 "Business not found"."""
    flat_success: bool = False
    """Answer success with the keys un-nested instead of under ``result``."""
    prefix: str = "INV-"
    """The invoice-number prefix used when a request sends no number."""


@dataclass(kw_only=True)
class Party:
    id: int
    type: str
    name: str | None
    mobile: str | None
    cash: bool = False


@dataclass(kw_only=True)
class Product:
    id: int
    name: str
    price: Decimal
    gst: Decimal
    with_tax: bool


@dataclass(kw_only=True)
class Firm:
    name: str
    token_sha256: str = ""
    """Which token this business is, for the log of created invoices (never the token)."""
    next_sequence: int = 1
    numbers: set[str] = field(default_factory=set)
    parties: dict[int, Party] = field(default_factory=dict)
    products: dict[int, Product] = field(default_factory=dict)
    # Parties by (mobile, type): a scan per invoice made a long demo run quadratic.
    _by_mobile: dict[tuple[str | None, str], Party] = field(default_factory=dict)

    def add_party(self, party: Party) -> None:
        self.parties[party.id] = party
        self._by_mobile.setdefault((party.mobile, party.type), party)

    def party_by_mobile(self, mobile: str, party_type: str) -> Party | None:
        return self._by_mobile.get((mobile, party_type))

    def product_by_name(self, name: str) -> Product | None:
        key = name.strip().casefold()
        return next((p for p in self.products.values() if p.name.casefold() == key), None)


Line = tuple[Product, Priced]


class BillClapBooks:
    """Every firm the sandbox knows, the shared credits, and the log of created invoices."""

    def __init__(self, **options: Any) -> None:
        if "token" in options:
            options["tokens"] = [options.pop("token"), *options.get("tokens", [])]
        self._initial = BillClapSandboxOptions.model_validate(options)
        self.reset()

    def reset(self) -> None:
        """Forget everything and return to the starting options."""
        self.options = self._initial.model_copy(deep=True)
        self.credits_left = self.options.credits
        self.firms: dict[str, Firm] = {}
        self.invoices: list[dict[str, Any]] = []
        self._next_id = 10001

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change options at runtime; ``credits`` also resets the credits counter."""
        merged = {**self.options.model_dump(), **changes}
        self.options = BillClapSandboxOptions.model_validate(merged)
        if "credits" in changes:
            self.credits_left = self.options.credits

    def created(self) -> list[dict[str, Any]]:
        return list(self.invoices)

    def summary(self) -> dict[str, Any]:
        firms = {
            firm.name: {
                "invoices": len(firm.numbers),
                "parties": len(firm.parties),
                "products": len(firm.products),
            }
            for firm in self.firms.values()
        }
        return {
            "credits_left": self.credits_left,
            "options": self.options.model_dump(),
            "firms": firms,
        }

    def firm(self, token: str) -> Firm:
        """The business a (valid API) token belongs to; created on first use."""
        if token not in self.firms:
            digest = hashlib.sha256(token.encode()).hexdigest()
            self.firms[token] = Firm(name=f"firm-{len(self.firms) + 1}", token_sha256=digest)
        return self.firms[token]

    def create_invoice(self, token: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate, number, charge a credit and record one invoice; ``BillClapRefusal`` else."""
        firm = self.firm(token)
        doc_type = body.get("type")
        if doc_type not in DOCUMENT_TYPES:
            raise BillClapRefusal("Invalid invoice type")
        party_type = "SUPPLIER" if doc_type in SUPPLIER_TYPES else "CUSTOMER"
        party = _resolve_party(firm, body.get("party_detail"), party_type)
        lines = _resolve_lines(firm, body.get("product_details"))
        totals = compute_totals([priced for _, priced in lines], body, cash_sale=party.cash)
        number = self._number(firm, body.get("invoice_number"))
        self._spend_credit()
        return self._record(firm, body, party=party, lines=lines, totals=totals, number=number)

    def _number(self, firm: Firm, requested: Any) -> str:
        if requested not in (None, ""):
            number = str(requested).strip()
            if number in firm.numbers:
                raise BillClapRefusal("Invoice number already exists")
            return number
        while f"{self.options.prefix}{firm.next_sequence}" in firm.numbers:
            firm.next_sequence += 1
        return f"{self.options.prefix}{firm.next_sequence}"

    def _spend_credit(self) -> None:
        if self.credits_left is None:
            return
        if self.credits_left <= 0:
            raise BillClapRefusal("Credits Expired!!!")
        self.credits_left -= 1

    def _record(
        self,
        firm: Firm,
        body: Mapping[str, Any],
        *,
        party: Party,
        lines: list[Line],
        totals: Totals,
        number: str,
    ) -> dict[str, Any]:
        # Id 0 marks what this invoice creates; a product named twice is one object.
        if party.id == 0:
            party.id = self._new_id()
            firm.add_party(party)
        for product, _ in lines:
            if product.id == 0:
                product.id = self._new_id()
                firm.products[product.id] = product
        firm.numbers.add(number)
        invoice_id = self._new_id()
        record = {
            "invoice_id": invoice_id,
            "invoice_number": number,
            "firm": firm.name,
            "type": body["type"],
            "party_id": party.id,
            "party_type": party.type,
            "product_ids": [product.id for product, _ in lines],
            "totals": totals.as_json(),
            "link": f"https://app.billclap.com/preview/{invoice_id}/{secrets.token_hex(6)}",
            "request": dict(body),
            "created_at": datetime.now(UTC).isoformat(),
        }
        # The log (``/_sandbox/created``) also says which token sent it: a test of credentials
        # changing while invoices flow checks each was sent with its account's token then.
        self.invoices.append({**record, "token_sha256": firm.token_sha256})
        return record

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _resolve_party(firm: Firm, detail: Any, party_type: str) -> Party:
    """The existing or new party for ``party_detail`` (id 0 means "to be created")."""
    if not isinstance(detail, dict) or not detail:
        raise BillClapRefusal("Party detail is required")
    existing = firm.parties.get(_int_or_none(detail.get("party_id")) or -1)
    if existing is not None:
        return existing
    name = detail.get("party_name") if isinstance(detail.get("party_name"), str) else None
    if detail.get("cash_sale"):
        cash = next((p for p in firm.parties.values() if p.cash and p.type == party_type), None)
        return cash or Party(id=0, type=party_type, name=CASH_SALE, mobile=None, cash=True)
    mobile = str(detail.get("mobile_no") or "").strip()
    if not mobile:
        raise BillClapRefusal("Mobile number or cash sale is required")
    found = firm.party_by_mobile(mobile, party_type)
    return found or Party(id=0, type=party_type, name=name, mobile=mobile)


def _resolve_lines(firm: Firm, details: Any) -> list[Line]:
    """Priced lines; entries without ``product_name`` are skipped, as BillClap does."""
    entries = [e for e in details if isinstance(e, dict)] if isinstance(details, list) else []
    named = [e for e in entries if isinstance(e.get("product_name"), str) and e["product_name"]]
    if not named:
        raise BillClapRefusal("Product name is required")
    pending: dict[str, Product] = {}
    return [_priced(firm, entry, pending) for entry in named]


def _priced(firm: Firm, entry: dict[str, Any], pending: dict[str, Product]) -> Line:
    name = entry["product_name"].strip()
    known = firm.products.get(_int_or_none(entry.get("product_id")) or -1)
    product = known or firm.product_by_name(name) or pending.get(name.casefold())
    price = decimal_or_none(entry.get("product_sell_price"))
    gst = decimal_or_none(entry.get("product_gst"))
    # The catalog fills what the entry leaves out; what the entry gives wins.
    if product is None:
        if price is None or gst is None:
            raise BillClapRefusal("Product sell price and gst is required")
        priced = Priced.of(entry, price=price, gst=gst, with_tax=True)
        product = Product(id=0, name=name, price=price, gst=gst, with_tax=priced.with_tax)
        pending[name.casefold()] = product
        return product, priced
    return product, Priced.of(
        entry, price=product.price, gst=product.gst, with_tax=product.with_tax
    )


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
