"""Billit's answers as outcomes (pure, no I/O).

Billit uses HTTP statuses as its overview documents them, so the status decides; the body
(``{"statusCode", "error", "message", "data"}``, plus ``errors: {field: [messages]}`` on 422)
supplies the text. The same table covers the invoice create and the calls around it (account,
customers, the reconciliation scan); ``creating`` marks the create, the only call whose
failure can leave an invoice behind.

| Answer                               | Outcome                                               |
|--------------------------------------|-------------------------------------------------------|
| 2xx with ``data.uuid`` (create)      | Synced (number "series-number", permalink, pdf)       |
| 429                                  | RateLimited(after=Retry-After or X-RateLimit-Reset,   |
|                                      | 60 s when neither)                                    |
| 401                                  | PauseAccount(auth_failed, DeadLetter(auth_failed))    |
| 403                                  | PauseAccount(forbidden, DeadLetter(forbidden))        |
| 404, 405, 406, 415                   | PauseAccount(misconfigured, Retry): our base_url or   |
|                                      | request is wrong, not the invoice; it waits           |
| 3xx, any call (never followed, at    | PauseAccount(misconfigured, Retry), via               |
| the HTTP seam)                       | ``http.RedirectError``                                |
| 422                                  | DeadLetter(rejected), the ``errors`` map in the text  |
| 400 with ``data.insidentId``, first  | Retry (nothing was created)                           |
| 400 again for the same row, or plain | DeadLetter(rejected)                                  |
| 408, 5xx, 2xx without a uuid         | Retry(outcome_unknown = creating)                     |
| other 4xx                            | DeadLetter(rejected)                                  |

Why "retry once" for a 400 with an incident id: Billit attaches ``insidentId`` to errors it
logged as incidents (400 and 500 alike), so a 400 carrying one may be Billit's own transient
failure rather than our data; a second one for the same row says it is the data. The adapter
remembers which rows got one (``seen_incident``); attempt numbers cannot say it, since an
earlier attempt may have failed for another reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from worker.errors import ProviderError, TransportError
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
from worker.providers.base import DETAIL_LIMIT, MESSAGE_LIMIT, bounded
from worker.providers.http import Reply, reset_after, with_quota_hold
from worker.texts import cut

DEFAULT_RATE_LIMIT_WAIT = 60.0
MISCONFIGURED = {
    404: "the endpoint is not there; check base_url",
    405: "the method is not allowed there; check base_url",
    406: "cannot satisfy our Accept header",
    415: "does not accept our Content-Type",
}
# 422 fields that hold ids read from /account: a refusal of one may mean the cache is stale.
ACCOUNT_ID_FIELDS = ("vatid", "paymentmethod", "billerid")
# Billit's documented limit is 60 requests a minute: the window when the account sets none.
RATE_WINDOW = 60.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def classify(  # noqa: PLR0911 -- one return per row of the table above
    reply: Reply,
    *,
    what: str,
    creating: bool,
    seen_incident: bool = False,
    window: float = RATE_WINDOW,
    now: Callable[[], datetime] = _utcnow,
) -> Outcome:
    """The outcome of any non-success answer, or of a create's answer (table above).

    ``what`` names the call in error texts ("the invoice", "the customer search", ...);
    ``window`` is how long a spent quota holds the account when Billit gives no reset: the
    period of the account's ``rate_limit`` (``Attempt.rate_window``).
    """
    status, body = reply.status, reply.body
    if creating and 200 <= status < 300:
        synced = synced_from(body)
        if synced is not None:
            # An answer that says no request is left holds the account until the quota comes
            # back, rather than spend the next request on a 429.
            return with_quota_hold(synced, reply, now(), window=window)
    if status == 429:
        after = reset_after(reply.headers, now())
        return RateLimited(
            error=_text("rate limit reached", what, reply),
            after=DEFAULT_RATE_LIMIT_WAIT if after is None else after,
            response=bounded(body),
        )
    if status in (401, 403):
        return _account_refused(reply, what)
    if status in MISCONFIGURED:
        retry = Retry(
            error=_text(MISCONFIGURED[status], what, reply),
            http_status=status,
            response=bounded(body),
        )
        return PauseAccount(reason=PauseReason.MISCONFIGURED, invoice=retry)
    if status == 400 and incident_of(body) is not None and not seen_incident:
        return Retry(
            error=_text(f"reported incident {incident_of(body)}; retrying once", what, reply),
            http_status=400,
            response=bounded(body),
        )
    if 200 <= status < 300 or status == 408 or status >= 500:
        return _server_failure(reply, what, creating=creating)
    return DeadLetter(
        reason=Reason.REJECTED,
        error=_text("refused", what, reply),
        http_status=status,
        response=bounded(body),
    )


def classify_transport_error(exc: TransportError, *, what: str, creating: bool) -> Retry:
    """No answer arrived. Only a create that may have been sent leaves the outcome unknown."""
    unknown = creating and exc.sent
    tail = "the invoice may have been created" if unknown else "nothing was created"
    return Retry(error=f"Billit {what}: {exc}; {tail}", outcome_unknown=unknown)


def synced_from(body: Any, *, recovered: bool = False) -> Synced | None:
    """``Synced`` from an invoice as Billit returns it (``{"data": {...}}``), or None."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("uuid") in (None, ""):
        return None
    permalink = data.get("permalink")
    link = permalink if isinstance(permalink, str) and permalink else None
    return Synced(
        provider_invoice_id=str(data["uuid"]),
        invoice_number=invoice_number(data),
        link=link,
        pdf_url=link.rstrip("/") + "/pdf" if link else None,
        response=bounded(body),
        recovered=recovered,
    )


def invoice_number(data: dict[str, Any]) -> str | None:
    """Billit's number with its series, as printed on the invoice: ``A-123``."""
    number = data.get("number")
    if number in (None, ""):
        return None
    kind = data.get("type")
    series = kind.get("series") if isinstance(kind, dict) else None
    return f"{series}-{number}" if isinstance(series, str) and series else str(number)


def incident_of(body: Any) -> str | None:
    """The ``data.insidentId`` Billit attaches to errors it logged (spelt as Billit does)."""
    data = body.get("data") if isinstance(body, dict) else None
    incident = data.get("insidentId") if isinstance(data, dict) else None
    return None if incident in (None, "") else str(incident)


def field_errors(body: Any) -> dict[str, Any]:
    """The 422 ``errors`` map, at the top level or under ``data``."""
    if not isinstance(body, dict):
        return {}
    for holder in (body, body.get("data")):
        errors = holder.get("errors") if isinstance(holder, dict) else None
        if isinstance(errors, dict):
            return errors
    return {}


def refuses_customer_id(reply: Reply) -> bool:
    """A 422 naming ``customerId``: a cached customer may have been deleted in Billit."""
    if reply.status != 422:
        return False
    return any("customerid" in name.casefold() for name in field_errors(reply.body))


def refuses_account_ids(reply: Reply) -> bool:
    """A 422 naming an id that came from ``/account`` (vat, payment method, biller)."""
    if reply.status != 422:
        return False
    names = [name.replace("_", "").casefold() for name in field_errors(reply.body)]
    return any(field in name for name in names for field in ACCOUNT_ID_FIELDS)


def message_of(body: Any) -> str:
    """Billit's message, with each field error of a 422 after it."""
    parts: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        parts.append(body["message"].strip())
    for field, problems in field_errors(body).items():
        texts = problems if isinstance(problems, list) else [problems]
        parts.append(f"{field}: {'; '.join(str(text) for text in texts)}")
    if not parts and isinstance(body, str) and body.strip():
        parts.append(cut(body.strip(), MESSAGE_LIMIT))
    return cut(" | ".join(part for part in parts if part), DETAIL_LIMIT) or "no message"


def _account_refused(reply: Reply, what: str) -> PauseAccount:
    if reply.status == 401:
        reason, pause, why = Reason.AUTH_FAILED, PauseReason.AUTH_FAILED, "refused the token"
    else:
        reason, pause, why = Reason.FORBIDDEN, PauseReason.FORBIDDEN, "forbade the call"
    dead = DeadLetter(
        reason=reason,
        error=_text(why, what, reply),
        http_status=reply.status,
        response=bounded(reply.body),
    )
    return PauseAccount(reason=pause, invoice=dead)


def _server_failure(reply: Reply, what: str, *, creating: bool) -> Retry:
    tail = "the invoice may have been created" if creating else "nothing was created"
    return Retry(
        error=_text(f"failed; {tail}", what, reply),
        outcome_unknown=creating,
        http_status=reply.status,
        response=bounded(reply.body),
    )


def _text(said: str, what: str, reply: Reply) -> str:
    return f"Billit {what}: {said} (HTTP {reply.status}): {message_of(reply.body)}"


class Settled(ProviderError):  # noqa: N818 -- not an error: an attempt's end
    """A call around the create answered in a way that decides the attempt: carries the outcome.

    Raised by the adapter's helpers (account, customers, reconciliation) so that a refusal deep
    in a helper ends the attempt in one place, ``Billit.create_invoice``.
    """

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(type(outcome).__name__)
        self.outcome = outcome
