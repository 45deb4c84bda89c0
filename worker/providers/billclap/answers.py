"""BillClap's answers as outcomes (pure, no I/O).

BillClap shares HTTP 500 between business errors ("Invoice number already exists") and genuine
server failures, and answers HTTP 200 when the plan lacks API access, so the status alone
decides almost nothing: the message does. Messages are matched tolerantly (case, spacing,
apostrophes, substring) because they are prose a provider may reword slightly. Anything
unrecognised after a request arrived is treated as "may have been created": a Retry with
``outcome_unknown``, which the engine only repeats when the number makes that safe.

| Answer                                          | Outcome                                    |
|-------------------------------------------------|--------------------------------------------|
| 2xx with ``invoice_id`` (nested in ``result`` or not) | Synced                               |
| 401, any message (token missing/wrong type/jwt) | PauseAccount(auth_failed, DeadLetter)      |
| "You don't have permission ... API integration" | PauseAccount(forbidden, DeadLetter)        |
| "Credits Expired!!!"                            | PauseAccount(credits_expired, DeadLetter)  |
| "Business not found"                            | PauseAccount(misconfigured, Retry)         |
| "Invoice number already exists"                 | DeadLetter(duplicate)                      |
| the documented validation messages              | DeadLetter(rejected)                       |
| 429                                             | RateLimited(after=Retry-After)             |
| 404 / 405                                       | PauseAccount(misconfigured, Retry)         |
| 3xx (never followed: ``http.RedirectError``)    | PauseAccount(misconfigured, Retry)         |
| other 5xx, 408, or a 2xx without an invoice id  | Retry(outcome_unknown=True)                |
| other 4xx (403: account-level)                  | DeadLetter(rejected) / PauseAccount(...)   |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from worker.errors import TransportError
from worker.outcome import (
    DeadLetter,
    Outcome,
    PauseAccount,
    PauseReason,
    RateLimited,
    Reason,
    Retry,
    Synced,
)
from worker.providers.base import DETAIL_LIMIT, MESSAGE_LIMIT, Attempt, bounded
from worker.providers.http import Reply, reset_after, with_quota_hold
from worker.texts import cut

PERMISSION = "you don't have permission"
CREDITS_EXPIRED = "credits expired"
BUSINESS_NOT_FOUND = "business not found"
DUPLICATE_NUMBER = "invoice number already exists"
VALIDATION_MESSAGES = (
    "party detail is required",
    "mobile number or cash sale is required",
    "product name is required",
    "product sell price and gst is required",
    "received amount can not be greater than invoice total amount",
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def classify(reply: Reply, attempt: Attempt, *, now: Callable[[], datetime] = _utcnow) -> Outcome:
    """The outcome of one answer from ``create-invoice`` (table in the module docstring)."""
    status, body = reply.status, reply.body
    if status == 429:
        return RateLimited(
            error=_text("rate limited", body, status),
            after=reset_after(reply.headers, now()),
            response=bounded(body),
        )
    if status == 401:
        error = _text("the API token was refused", body, status)
        dead = DeadLetter(
            reason=Reason.AUTH_FAILED, error=error, http_status=401, response=bounded(body)
        )
        return PauseAccount(reason=PauseReason.AUTH_FAILED, invoice=dead)
    if status in (404, 405):
        return _misconfigured(
            _text("the endpoint is not there; check base_url", body, status), reply
        )
    if 200 <= status < 300:
        synced = _synced(body, attempt)
        if synced is not None:
            # Not documented by BillClap, but honoured if sent: the next request would be a 429.
            window = attempt.rate_window()
            return with_quota_hold(synced, reply, now(), window=window)
    return _by_message(reply, attempt) or _by_status(reply)


def classify_transport_error(exc: TransportError) -> Retry:
    """No answer arrived. ``sent`` says whether BillClap may have created the invoice anyway."""
    if exc.sent:
        return Retry(
            error=f"BillClap: {exc}; the request may have arrived, outcome unknown",
            outcome_unknown=True,
        )
    return Retry(error=f"BillClap: {exc}; the request was not sent", outcome_unknown=False)


def message_of(body: Any) -> str:
    """BillClap's human message: ``error`` first (handler errors), then ``message`` (auth)."""
    payload = _payload(body)
    parts = [payload.get(key) for key in ("error", "message")] if payload else []
    texts = [part.strip() for part in parts if isinstance(part, str) and part.strip()]
    if texts:
        return cut(" - ".join(dict.fromkeys(texts)), DETAIL_LIMIT)
    if isinstance(body, str) and body.strip():
        return cut(body.strip(), MESSAGE_LIMIT)
    return "no message"


def _synced(body: Any, attempt: Attempt) -> Synced | None:
    payload = _payload(body)
    if payload is None or payload.get("status") is False:
        return None
    invoice_id = payload.get("invoice_id")
    if invoice_id in (None, ""):
        return None
    link = payload.get("link")
    return Synced(
        provider_invoice_id=str(invoice_id),
        invoice_number=attempt.invoice.number,
        link=link if isinstance(link, str) else None,
        pdf_url=None,
        response=bounded(body),
    )


def _by_message(reply: Reply, attempt: Attempt) -> Outcome | None:
    message = message_of(reply.body)
    said = _normalised(message)
    status, response = reply.status, bounded(reply.body)
    if PERMISSION in said and "api integration" in said:
        dead = DeadLetter(
            reason=Reason.FORBIDDEN,
            error=f"BillClap plan lacks API access: {message}",
            http_status=status,
            response=response,
        )
        return PauseAccount(reason=PauseReason.FORBIDDEN, invoice=dead)
    if CREDITS_EXPIRED in said:
        dead = DeadLetter(
            reason=Reason.CREDITS_EXPIRED,
            error=f"BillClap: {message}",
            http_status=status,
            response=response,
        )
        return PauseAccount(reason=PauseReason.CREDITS_EXPIRED, invoice=dead)
    if BUSINESS_NOT_FOUND in said:
        return _misconfigured(
            f"BillClap: {message} (the token's business is missing or inactive)", reply
        )
    if DUPLICATE_NUMBER in said:
        return DeadLetter(
            reason=Reason.DUPLICATE,
            error=_duplicate_text(attempt),
            http_status=status,
            response=response,
        )
    if any(known in said for known in VALIDATION_MESSAGES):
        return DeadLetter(
            reason=Reason.REJECTED, error=message, http_status=status, response=response
        )
    return None


def _by_status(reply: Reply) -> Outcome:
    status, body = reply.status, reply.body
    if 200 <= status < 300:
        error = _text("answered without an invoice id; it may have been created", body, status)
        return Retry(error=error, outcome_unknown=True, http_status=status, response=bounded(body))
    if status >= 500 or status == 408:
        return Retry(
            error=_text("server failure; the invoice may have been created", body, status),
            outcome_unknown=True,
            http_status=status,
            response=bounded(body),
        )
    if status == 403:
        retry = Retry(
            error=_text("access refused", body, status), http_status=status, response=bounded(body)
        )
        return PauseAccount(reason=PauseReason.FORBIDDEN, invoice=retry)
    return DeadLetter(
        reason=Reason.REJECTED,
        error=_text("refused the request", body, status),
        http_status=status,
        response=bounded(body),
    )


def _misconfigured(error: str, reply: Reply) -> PauseAccount:
    # Not the invoice's fault: it waits while the account is paused, and goes once fixed.
    retry = Retry(
        error=error, outcome_unknown=False, http_status=reply.status, response=bounded(reply.body)
    )
    return PauseAccount(reason=PauseReason.MISCONFIGURED, invoice=retry)


def _duplicate_text(attempt: Attempt) -> str:
    number = attempt.invoice.number
    if attempt.prior_unknown:
        return (
            f"BillClap says invoice number {number!r} already exists. An earlier attempt's "
            "outcome was unknown and BillClap has no lookup, so the existing invoice is probably "
            "the one that attempt created: verify it in BillClap before replaying."
        )
    return (
        f"BillClap says invoice number {number!r} already exists, and no earlier attempt of ours "
        "may have created it: another invoice already uses this number (a producer collision)."
    )


def _payload(body: Any) -> Mapping[str, Any] | None:
    """The object holding the answer's keys: ``result`` when nested, else the body itself."""
    if not isinstance(body, dict):
        return None
    result = body.get("result")
    return result if isinstance(result, dict) else body


def _text(what: str, body: Any, status: int) -> str:
    return f"BillClap {what} (HTTP {status}): {message_of(body)}"


def _normalised(message: str) -> str:
    text = message.replace("\u2019", "'").replace("cannot", "can not").casefold()
    return " ".join(text.split())
