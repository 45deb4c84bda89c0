"""Refrens' answers as outcomes (pure, no I/O).

Refrens runs on Feathers, so every error is ``{"name", "message", "code", "className", "data",
"errors"}`` and the HTTP status means what it says. The one undocumented case is a repeated
invoice number: likely a 400 BadRequest or a 409 Conflict mentioning the number, so any 409 and
any 400 whose message speaks of the invoice number already existing count as a duplicate.

| Answer                                              | Outcome                                  |
|-----------------------------------------------------|------------------------------------------|
| 200/201 with ``_id``                                | Synced (link ``share.link``, pdf ``share.pdf``) |
| duplicate number (409, or 400 naming it)            | DeadLetter(duplicate); the adapter first reconciles after an unknown outcome |
| 400 BadRequest, 422, other 4xx                      | DeadLetter(rejected), message and field errors kept |
| 401 NotAuthenticated (after one refresh, if any)    | PauseAccount(auth_failed, DeadLetter)    |
| 403 Forbidden                                       | PauseAccount(forbidden, DeadLetter)      |
| 404 NotFound / 405 on create                        | PauseAccount(misconfigured, Retry): wrong url_key or base_url |
| 3xx on any call (never followed: ``http.RedirectError``) | PauseAccount(misconfigured, Retry)  |
| 429                                                 | RateLimited(after=Retry-After)           |
| 5xx, 408, 2xx without ``_id``                       | Retry(outcome_unknown=True)              |
"""

from __future__ import annotations

from collections.abc import Callable
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

_NUMBER_WORDS = ("invoice number", "invoicenumber", "invoice no")
_EXISTS_WORDS = ("exist", "already", "duplicate", "taken", "unique")
FIELD_ERRORS_SHOWN = 10


def _utcnow() -> datetime:
    return datetime.now(UTC)


def classify(reply: Reply, attempt: Attempt, *, now: Callable[[], datetime] = _utcnow) -> Outcome:
    """The outcome of one answer to the create call (table in the module docstring)."""
    status, body = reply.status, reply.body
    if 200 <= status < 300:
        synced = synced_from(body, attempt)
        if synced is not None:
            # Refrens documents no limit; a spent quota it reports is honoured all the same.
            window = attempt.rate_window()
            return with_quota_hold(synced, reply, now(), window=window)
        return Retry(
            error=describe("answered without an invoice _id; it may have been created", reply),
            outcome_unknown=True,
            http_status=status,
            response=bounded(body),
        )
    if is_duplicate(reply):
        return duplicate(attempt, reply, evidence=None)
    if status in (404, 405):
        return misconfigured(reply)
    return classify_refusal(reply, now=now)


def classify_refusal(reply: Reply, *, now: Callable[[], datetime] = _utcnow) -> Outcome:
    """An error answer from any Refrens call: rate limit, account problems, server failure,
    or a refusal of the data (the create-specific cases are handled by ``classify``)."""
    status, response = reply.status, bounded(reply.body)
    if status == 429:
        after = reset_after(reply.headers, now())
        return RateLimited(error=describe("rate limited", reply), after=after, response=response)
    if status == 401:
        dead = DeadLetter(
            reason=Reason.AUTH_FAILED,
            error=describe("refused the credentials", reply),
            http_status=status,
            response=response,
        )
        return PauseAccount(reason=PauseReason.AUTH_FAILED, invoice=dead)
    if status == 403:
        dead = DeadLetter(
            reason=Reason.FORBIDDEN,
            error=describe("forbids this (plan or permission)", reply),
            http_status=status,
            response=response,
        )
        return PauseAccount(reason=PauseReason.FORBIDDEN, invoice=dead)
    if status >= 500 or status == 408:
        return Retry(
            error=describe("server failure; the invoice may have been created", reply),
            outcome_unknown=True,
            http_status=status,
            response=response,
        )
    return DeadLetter(
        reason=Reason.REJECTED,
        error=describe("refused the invoice", reply),
        http_status=status,
        response=response,
    )


def classify_login(reply: Reply, *, now: Callable[[], datetime] = _utcnow) -> Outcome:
    """A refused app-secret login (``POST /authentication``). The invoice was not sent."""
    status = reply.status
    if status in (400, 401, 404):
        # A wrong app id or secret (401), or a strategy this Refrens does not offer (400).
        dead = DeadLetter(
            reason=Reason.AUTH_FAILED,
            error=describe("refused the app-secret login", reply),
            http_status=status,
            response=bounded(reply.body),
        )
        return PauseAccount(reason=PauseReason.AUTH_FAILED, invoice=dead)
    outcome = classify_refusal(reply, now=now)
    if isinstance(outcome, Retry):
        return Retry(
            error=describe("app-secret login failed; the invoice was not sent", reply),
            http_status=status,
            response=outcome.response,
        )
    if isinstance(outcome, DeadLetter):
        return Retry(
            error=describe("answered the app-secret login unexpectedly", reply),
            http_status=status,
            response=outcome.response,
        )
    return outcome


def classify_transport_error(exc: TransportError, *, sending: str = "invoice") -> Retry:
    """No answer arrived. ``sent`` says whether Refrens may have created the invoice anyway;
    a failed login or lookup never creates anything (``sending`` names what was sent)."""
    if exc.sent and sending == "invoice":
        return Retry(
            error=f"Refrens: {exc}; the request may have arrived, outcome unknown",
            outcome_unknown=True,
        )
    return Retry(error=f"Refrens: {exc} ({sending}); no invoice was created by this call")


def synced_from(body: Any, attempt: Attempt, *, recovered: bool = False) -> Synced | None:
    """``Synced`` from a Refrens invoice (create answer or lookup hit), or None without ``_id``."""
    if not isinstance(body, dict) or body.get("_id") in (None, ""):
        return None
    share = body.get("share")
    if not isinstance(share, dict):
        share = {}
    number = body.get("invoiceNumber")
    link, pdf = share.get("link"), share.get("pdf")
    return Synced(
        provider_invoice_id=str(body["_id"]),
        invoice_number=str(number) if number not in (None, "") else attempt.invoice.number,
        link=link if isinstance(link, str) else None,
        pdf_url=pdf if isinstance(pdf, str) else None,
        response=bounded(body),
        recovered=recovered,
    )


def is_duplicate(reply: Reply) -> bool:
    """Whether the answer refuses a repeated invoice number (tolerant: the text is not
    documented). Any 409 Conflict on create is one; a 400 must say so in its message."""
    if reply.status == 409:
        return True
    if reply.status != 400:
        return False
    said = " ".join(message_of(reply.body).casefold().split())
    return any(w in said for w in _NUMBER_WORDS) and any(w in said for w in _EXISTS_WORDS)


def duplicate(attempt: Attempt, reply: Reply, *, evidence: str | None) -> DeadLetter:
    """The dead letter for a number Refrens already holds and we could not claim as ours."""
    number = attempt.invoice.number
    if attempt.prior_unknown:
        why = evidence or "the lookup did not find it"
        error = (
            f"Refrens says invoice number {number!r} already exists, after an attempt whose "
            f"outcome was unknown, but it cannot be confirmed as ours: {why}. Check the invoice "
            "in Refrens before replaying."
        )
    else:
        error = (
            f"Refrens says invoice number {number!r} already exists, and no earlier attempt of "
            "ours may have created it: another invoice already uses this number (a producer "
            "collision)."
        )
    return DeadLetter(
        reason=Reason.DUPLICATE,
        error=f"{error} ({describe('answered', reply)})",
        http_status=reply.status,
        response=bounded(reply.body),
    )


def misconfigured(reply: Reply) -> PauseAccount:
    """Not the invoice's fault: it waits while the account is paused, and goes once fixed."""
    retry = Retry(
        error=describe("does not know this business or path; check url_key and base_url", reply),
        http_status=reply.status,
        response=bounded(reply.body),
    )
    return PauseAccount(reason=PauseReason.MISCONFIGURED, invoice=retry)


def message_of(body: Any) -> str:
    """The Feathers error as one line: ``name: message [field: problem; ...]``."""
    if isinstance(body, dict):
        message = body.get("message")
        name = body.get("name")
        parts = [str(part).strip() for part in (name, message) if part not in (None, "")]
        text = ": ".join(dict.fromkeys(parts)) or "no message"
        fields = field_errors(body.get("errors"))
        return cut(f"{text} [{fields}]" if fields else text, DETAIL_LIMIT)
    if isinstance(body, str) and body.strip():
        return cut(body.strip(), MESSAGE_LIMIT)
    return "no message"


def field_errors(errors: Any) -> str:
    """Feathers ``errors`` (mongoose style ``{path: {message}}`` or ``{path: message}``)."""
    if not isinstance(errors, dict):
        return ""
    shown = []
    for path, problem in list(errors.items())[:FIELD_ERRORS_SHOWN]:
        text = problem.get("message") if isinstance(problem, dict) else problem
        shown.append(f"{path}: {text}" if text not in (None, "") else str(path))
    return "; ".join(shown)


def describe(what: str, reply: Reply) -> str:
    return f"Refrens {what} (HTTP {reply.status}): {message_of(reply.body)}"
