"""The Billit sandbox's state: one company (every accepted token is a user of it), its account
settings, customers, invoices and the per-token request windows. No HTTP here.

``create_customer`` and ``create_invoice`` validate in full (``billit_rules``) and raise
``BillitRefusal`` (status, message, field errors) before writing anything; numbers are
assigned per series (invoice type) in creation order.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.testing.sandbox.billit.rules import Known, customer_errors, invoice_errors, totals

PERMALINK_BASE = "https://app.sandbox-billit.xyz/view/invoice"
WINDOW_SECONDS = 60.0


def _default_vats() -> list[dict[str, Any]]:
    # Greece's rates; Billit lists an account's vats with the rate in ``value``.
    return [
        {"id": 1, "name": "24%", "value": 24},
        {"id": 2, "name": "13%", "value": 13},
        {"id": 3, "name": "6%", "value": 6},
        {"id": 4, "name": "0%", "value": 0},
    ]


def _default_types() -> list[dict[str, Any]]:
    return [
        {"id": 1, "series": "A", "name": "Sales invoice"},
        {"id": 2, "series": "CN", "name": "Credit invoice"},
        {"id": 3, "series": "R", "name": "Retail receipt", "retail": True},
    ]


class BillitSandboxOptions(BaseModel):
    """What a Billit sandbox simulates; every key can change at runtime."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(default_factory=lambda: ["sandbox-token"])
    """Bearer tokens that are accepted; anything else is 401 "Authorization Required"."""
    rate_limit_per_minute: int | None = Field(default=60, ge=1)
    """Requests per token per fixed 60 s window (None: unlimited); see ``RateWindow``."""
    blocked: bool = False
    """``isBlocked``: creates answer 403."""
    suspended: bool = False
    """``isSuspended``: creates answer 403."""
    subscription_active: bool = True
    """False: the subscription ended yesterday; creates answer 403."""
    incidents: int = Field(default=0, ge=0)
    """The next N invoice creates answer 400 with ``data.insidentId`` (nothing created)."""
    list_order: Literal["newest", "oldest"] = "newest"
    """The order of ``GET /v1/invoices``, which the documents do not give: newest first, or
    oldest first (a Laravel paginator without an order)."""
    list_created_at: bool = True
    """List items show ``createdAt`` (not in the documents); False leaves it out."""
    vats: list[dict[str, Any]] = Field(default_factory=_default_vats)
    invoice_types: list[dict[str, Any]] = Field(default_factory=_default_types)
    """``{"id", "series", "name", "retail"?}``; a retail type needs no customer."""
    payment_methods: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"id": 1, "name": "Cash"}, {"id": 2, "name": "Bank transfer"}]
    )
    biller: dict[str, Any] = Field(
        default_factory=lambda: {"id": 1, "name": "Sandbox Biller", "country": "GR"}
    )


class BillitRefusal(Exception):  # noqa: N818 -- named after what Billit does, like BillClapRefusal
    """Billit refuses the request: the status, its message, and 422 field errors."""

    def __init__(self, status: int, message: str, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass(kw_only=True)
class RateWindow:
    """Laravel's throttle, which Billit's API runs: a fixed window opened by the first request
    and lasting 60 s; within it at most ``limit`` requests pass, the rest answer 429 until
    the window ends (``Retry-After`` = seconds left). Refused requests are not counted."""

    started: float
    used: int = 0


@dataclass(kw_only=True)
class Ledger:
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    next_number: dict[Any, int] = field(default_factory=dict)
    windows: dict[str, RateWindow] = field(default_factory=dict)
    next_id: int = 1000


class BillitBooks:
    """The sandbox company's state and the rules that change it."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, **options: Any) -> None:
        if "token" in options:
            options["tokens"] = [options.pop("token"), *options.get("tokens", [])]
        self._initial = BillitSandboxOptions.model_validate(options)
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything and return to the starting options."""
        self.options = self._initial.model_copy(deep=True)
        self.ledger = Ledger()

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change options at runtime; ``ValueError`` (pydantic's) and no change on a bad key."""
        merged = {**self.options.model_dump(), **changes}
        self.options = BillitSandboxOptions.model_validate(merged)

    def created(self) -> list[dict[str, Any]]:
        return [dict(record) for record in self.ledger.invoices]

    def summary(self) -> dict[str, Any]:
        return {
            "options": self.options.model_dump(),
            "customers": len(self.ledger.customers),
            "invoices": len(self.ledger.invoices),
        }

    # --- the rate limit ------------------------------------------------------------------

    def throttle(self, key: str) -> tuple[bool, int, float]:
        """Count one request for ``key``: (allowed, remaining, seconds until the window ends)."""
        limit = self.options.rate_limit_per_minute
        now = self._clock()
        window = self.ledger.windows.get(key)
        if window is None or now - window.started >= WINDOW_SECONDS:
            window = self.ledger.windows[key] = RateWindow(started=now)
        left = max(0.0, window.started + WINDOW_SECONDS - now)
        if limit is None:
            return True, 0, left
        if window.used >= limit:
            return False, 0, left
        window.used += 1
        return True, limit - window.used, left

    # --- the account ---------------------------------------------------------------------

    def refusal(self) -> str | None:
        """Why creates are forbidden now, or None."""
        if self.options.blocked:
            return "Your account is blocked."
        if self.options.suspended:
            return "Your account is suspended."
        if not self.options.subscription_active:
            return "Your subscription has expired."
        return None

    def account(self) -> dict[str, Any]:
        """``GET /v1/account``'s ``data``."""
        today = datetime.now(UTC).date()
        active = self.options.subscription_active
        ends = today + timedelta(days=365) if active else today - timedelta(days=1)
        return {
            "id": 1,
            "email": "owner@sandbox-billit.example",
            "isBlocked": self.options.blocked,
            "isSuspended": self.options.suspended,
            "relations": {
                "biller": dict(self.options.biller),
                "paymentMethods": [dict(m) for m in self.options.payment_methods],
                "vats": [dict(v) for v in self.options.vats],
                "settings": {"country": self.options.biller.get("country", "GR"), "lang": "el"},
                "subscription": {
                    "plan": "Business",
                    "status": "active" if active else "expired",
                    "endsAt": ends.isoformat(),
                },
            },
        }

    # --- customers -----------------------------------------------------------------------

    def search_customers(self, q: str | None) -> list[dict[str, Any]]:
        """Customers whose VAT id, phone, mobile or e-mail contains ``q`` (all without it)."""
        customers = list(self.ledger.customers.values())
        if not q:
            return customers
        needle = q.strip().casefold()
        fields = ("vatId", "phone", "mobile", "email")
        return [
            c
            for c in customers
            if any(needle in str(c.get(name) or "").casefold() for name in fields)
        ]

    def create_customer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        errors = customer_errors(body)
        if errors:
            raise BillitRefusal(422, "The given data was invalid.", errors)
        self.ledger.next_id += 1
        keep = [
            *("isCompany", "company", "customerType", "country", "vatId", "taxOffice"),
            *("streetAddress", "postalCode", "city", "mobile", "phone", "email", "lang"),
        ]
        customer = {"id": self.ledger.next_id, **{k: body[k] for k in keep if k in body}}
        self.ledger.customers[customer["id"]] = customer
        return customer

    # --- invoices ------------------------------------------------------------------------

    def create_invoice(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate, number and record one invoice; ``BillitRefusal`` and nothing written else."""
        if self.options.incidents:
            self.options.incidents -= 1
            raise BillitRefusal(400, "Bad Request", {"insidentId": secrets.token_hex(8)})
        errors = invoice_errors(body, self._known())
        if errors:
            raise BillitRefusal(422, "The given data was invalid.", errors)
        kind = self._types()[body["invoiceTypeId"]]
        number = self.ledger.next_number.get(kind["id"], 1)
        self.ledger.next_number[kind["id"]] = number + 1
        record = self._record(body, kind, number)
        self.ledger.invoices.append(record)
        return record

    def invoice(self, invoice_uuid: str) -> dict[str, Any] | None:
        return next((r for r in self.ledger.invoices if r["uuid"] == invoice_uuid), None)

    def _record(
        self, body: Mapping[str, Any], kind: Mapping[str, Any], number: int
    ) -> dict[str, Any]:
        invoice_uuid = str(uuid.uuid4())
        amounts = totals(body["products"], self._vat_rates())
        return {
            "uuid": invoice_uuid,
            "number": number,
            "series": kind["series"],
            "invoice_number": f"{kind['series']}-{number}",
            "type": {k: kind[k] for k in ("id", "series", "name")},
            "invoiceDate": body["invoiceDate"],
            "dateExpires": body.get("dateExpires"),
            "customerId": body.get("customerId"),
            "tags": list(body.get("tags") or []),
            **{name: float(value) for name, value in amounts.items()},
            "isPaid": bool(body.get("isPaid")),
            "permalink": f"{PERMALINK_BASE}/{invoice_uuid}",
            "request": dict(body),
            "created_at": datetime.now(UTC).isoformat(),
        }

    def _known(self) -> Known:
        return Known(
            invoice_types=self._types(),
            customers=self.ledger.customers.keys(),
            vats=self._vat_rates(),
            payment_methods={m.get("id") for m in self.options.payment_methods},
            billers={self.options.biller.get("id")},
        )

    def _types(self) -> dict[Any, dict[str, Any]]:
        return {t["id"]: t for t in self.options.invoice_types if "id" in t}

    def _vat_rates(self) -> dict[Any, Decimal]:
        return {v["id"]: Decimal(str(v.get("value", 0))) for v in self.options.vats if "id" in v}
