"""The Refrens sandbox's state: businesses and their invoices, logins and the tokens they issued.

No HTTP here: methods take what the routes read and either return JSON-ready values or raise
``FeathersError`` with Refrens' answer. Each ``url_key`` is a business with its own invoices
and numbers; every accepted token may use every business. Invoices are numbered as the document
says: a request without ``invoiceNumber`` gets the last invoice's number plus one, keeping its
zero padding (``APP-2020-0004`` → ``APP-2020-0005``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.testing.sandbox.refrens.errors import FeathersError, not_authenticated
from worker.testing.sandbox.refrens.schema import (
    final_total,
    parse_date,
    party,
    priced_items,
    validate,
)
from worker.testing.sandbox.refrens.tokens import TokenIssuer

SHARE_BASE = "https://www.refrens.com/share"
_TRAILING_DIGITS = re.compile(r"(\d+)$")


class RefrensSandboxOptions(BaseModel):
    """What a Refrens sandbox simulates; every key can change at runtime."""

    model_config = ConfigDict(extra="forbid")

    url_keys: list[str] = Field(default_factory=lambda: ["sandbox-business"])
    """Businesses that exist; any other ``urlKey`` answers 404 NotFound."""
    tokens: list[str] = Field(default_factory=lambda: ["sandbox-token"])
    """Long-lived bearer tokens accepted as they are; removing one revokes it (401)."""
    apps: dict[str, str] = Field(default_factory=lambda: {"sandbox-app": "sandbox-app-secret"})
    """appId → appSecret for app-secret login; removing an app revokes its issued tokens."""
    token_lifetime: float = Field(default=86400.0, ge=0)
    """Seconds an issued token lasts (a day at most at Refrens); then 401 "jwt expired"."""
    api_plan: bool = True
    """False: the plan has no API access, every business call answers 403 Forbidden."""
    create_status: Literal[200, 201] = 200
    """The create answer's status: the document shows 200; Feathers' own default is 201."""
    duplicate_status: Literal[400, 409] = 400
    """How a repeated invoice number is refused (undocumented): 400 BadRequest or 409 Conflict."""
    ignore_filters: bool = False
    """Find ignores field filters such as ``invoiceNumber`` (only ``$`` parameters apply)."""
    refuse_filters: bool = False
    """Find answers a field filter 400 BadRequest: only the documented parameters are taken."""
    default_limit: int = Field(default=10, ge=1)
    max_limit: int = Field(default=50, ge=1)
    first_number: str = "INV-0001"
    """The number of a business's first invoice when the request gives none."""
    gst_state: str = "29"
    """The businesses' own GST state: a customer elsewhere makes the invoice inter-state."""


@dataclass(kw_only=True)
class Business:
    url_key: str
    invoices: list[dict[str, Any]] = field(default_factory=list)
    by_number: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)


class RefrensBooks:
    """Every business the sandbox knows, its invoices, and the login state."""

    def __init__(self, **options: Any) -> None:
        if "token" in options:
            options["tokens"] = [options.pop("token"), *options.get("tokens", [])]
        self._initial = RefrensSandboxOptions.model_validate(options)
        self.reset()

    def reset(self) -> None:
        """Forget everything and return to the starting options."""
        self.options = self._initial.model_copy(deep=True)
        self.issuer = TokenIssuer()
        self.businesses: dict[str, Business] = {}
        self.log: list[dict[str, Any]] = []
        self.emails: list[dict[str, Any]] = []

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change options at runtime (``ValueError`` and no change on a bad key or value)."""
        merged = {**self.options.model_dump(), **changes}
        self.options = RefrensSandboxOptions.model_validate(merged)

    def created(self) -> list[dict[str, Any]]:
        return list(self.log)

    def summary(self) -> dict[str, Any]:
        return {
            "options": self.options.model_dump(),
            "logins": self.issuer.logins,
            "businesses": {k: len(b.invoices) for k, b in self.businesses.items()},
            "emails_sent": len(self.emails),
        }

    # --- auth ---------------------------------------------------------------------------

    def login(self, body: Any) -> dict[str, Any]:
        """``POST /authentication``: the app-secret strategy, as Feathers answers it."""
        if not isinstance(body, dict) or not body.get("strategy"):
            raise FeathersError(400, "Invalid authentication information (no `strategy` set)")
        if body["strategy"] != "app-secret":
            raise not_authenticated(
                "Invalid authentication information (strategy not allowed in authStrategies)"
            )
        app_id, app_secret = body.get("appId"), body.get("appSecret")
        expected = self.options.apps.get(app_id) if isinstance(app_id, str) else None
        if expected is None or not isinstance(app_secret, str) or app_secret != expected:
            raise not_authenticated("Invalid login")
        assert isinstance(app_id, str)
        return self.issuer.issue(app_id, lifetime=self.options.token_lifetime)

    def authenticate(self, header: str | None) -> None:
        """Accept the request's bearer token or raise 401 NotAuthenticated."""
        if not header or not header.strip():
            raise not_authenticated("Not authenticated")
        scheme, _, value = header.strip().partition(" ")
        token = value.strip() if scheme.casefold() in ("bearer", "jwt") else header.strip()
        if token in self.options.tokens:
            return
        self.issuer.verify(token, apps=self.options.apps)

    def business(self, url_key: str) -> Business:
        """The business, after the plan check; 404 NotFound or 403 Forbidden otherwise."""
        if url_key not in self.options.url_keys:
            raise FeathersError(404, f"No record found for urlKey '{url_key}'")
        if not self.options.api_plan:
            raise FeathersError(403, "API access is not available on your current plan")
        if url_key not in self.businesses:
            self.businesses[url_key] = Business(url_key=url_key)
        return self.businesses[url_key]

    # --- invoices -----------------------------------------------------------------------

    def create(self, business: Business, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, number and store one invoice; ``FeathersError`` for a refused one."""
        validate(body)
        number = self._number(business, body.get("invoiceNumber"))
        record = self._record(business, body, number)
        business.invoices.append(record)
        business.by_number[number] = record
        self.log.append({**record, "urlKey": business.url_key, "request": body})
        if isinstance(body.get("email"), dict):
            self.emails.append({"invoice": record["_id"], "email": body["email"]})
        return record

    def get(self, business: Business, invoice_id: str) -> dict[str, Any]:
        for record in business.invoices:
            if record["_id"] == invoice_id:
                return record
        raise FeathersError(404, f"No record found for id '{invoice_id}'")

    def _number(self, business: Business, requested: Any) -> str:
        if requested not in (None, ""):
            number = str(requested).strip()
            if number in business.by_number:
                raise self._duplicate(number)
            return number
        last = business.invoices[-1]["invoiceNumber"] if business.invoices else None
        number = self.options.first_number if last is None else next_number(last)
        while number in business.by_number:
            number = next_number(number)
        return number

    def _duplicate(self, number: str) -> FeathersError:
        if self.options.duplicate_status == 409:
            # feathers-mongoose's translation of a unique-index violation (E11000).
            return FeathersError(
                409, f"invoiceNumber: {number} already exists.", errors={"invoiceNumber": number}
            )
        return FeathersError(
            400,
            f"Invoice number {number} already exists",
            errors={"invoiceNumber": {"message": "Invoice number already exists"}},
        )

    def _record(self, business: Business, body: dict[str, Any], number: str) -> dict[str, Any]:
        now = _timestamp(datetime.now(UTC))
        invoice_id = object_id()
        items = priced_items(body, [object_id() for _ in body["items"]])
        billed_to = party(body["billedTo"])
        record: dict[str, Any] = {
            "_id": invoice_id,
            "invoiceNumber": number,
            "invoiceDate": _date_or(body.get("invoiceDate"), now),
            "currency": body.get("currency") or "INR",
            "billType": body.get("invoiceType") or "INVOICE",
            "status": "UNPAID",
            "billedBy": self._billed_by(business, body),
            "billedTo": billed_to,
            "invoiceTitle": body.get("invoiceTitle") or "Invoice",
            "discount": {"discountType": "PERCENTAGE"},
            "items": items,
            "client": business.clients.setdefault(billed_to["name"], object_id()),
            "igst": billed_to.get("gstState") != self.options.gst_state,
            "createdAt": now,
            "updatedAt": now,
            "finalTotal": final_total(items),
            "share": {
                "link": f"{SHARE_BASE}/{business.url_key}/invoices/{invoice_id}",
                "pdf": f"{SHARE_BASE}/{business.url_key}/invoices/{invoice_id}/pdf",
            },
            "terms": [],
            "attachments": [],
            "isExpenditure": False,
            "taxType": "INDIA",
            "locale": "en-IN",
            "tags": [],
        }
        for key in ("invoiceSubTitle", "contact"):
            if key in body:
                record[key] = body[key]
        if body.get("dueDate") is not None:
            record["dueDate"] = _date_or(body["dueDate"], now)
        return record

    def _billed_by(self, business: Business, body: dict[str, Any]) -> dict[str, Any]:
        given = party(body.get("billedBy"))
        own = {"name": business.url_key, "gstState": self.options.gst_state, "country": "IN"}
        return {**own, **given}


def next_number(last: str) -> str:
    """The number after ``last``: its trailing digits plus one, padding kept; ``-1`` appended
    when it ends in no digits."""
    match = _TRAILING_DIGITS.search(last)
    if match is None:
        return f"{last}-1"
    digits = match.group(1)
    return last[: match.start()] + str(int(digits) + 1).zfill(len(digits))


def object_id() -> str:
    """A MongoDB-style id: 4 bytes of seconds, 8 random bytes, as 24 hex digits."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _date_or(value: Any, default: str) -> str:
    parsed = parse_date(value)
    if parsed is None:
        return default
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _timestamp(parsed.astimezone(UTC))
