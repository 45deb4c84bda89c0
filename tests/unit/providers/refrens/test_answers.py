"""Refrens' answers → outcomes: the document's bodies and Feathers' error classes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from worker.errors import TransportError
from worker.invoice import parse_invoice
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
from worker.providers.base import Attempt
from worker.providers.http import Reply
from worker.providers.refrens.adapter import classify
from worker.providers.refrens.answers import (
    classify_login,
    classify_transport_error,
    is_duplicate,
    message_of,
)
from worker.providers.refrens.lookup import ListingError, match, parse_page

NOW = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
CREATED = {
    "_id": "60cc8cc6aa3024abd4bef447",
    "invoiceNumber": "APP-2020-0004",
    "status": "UNPAID",
    "finalTotal": {"total": 1580},
    "share": {"link": "https://refrens.example/view", "pdf": "https://refrens.example/pdf"},
}


def feathers(code: int, name: str, class_name: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "message": message,
        "code": code,
        "className": class_name,
        "data": {"message": message},
        "errors": {},
        **extra,
    }


NOT_AUTHENTICATED = feathers(401, "NotAuthenticated", "not-authenticated", "Invalid login")


def attempt(*, number: str | None = "APP-2020-0004", prior_unknown: bool = False) -> Attempt:
    doc: dict[str, Any] = {
        "number": number,
        "cash_sale": True,
        "lines": [{"name": "X", "quantity": 1, "unit_price": 1}],
    }
    return Attempt(
        outbox_id=1,
        account="acme",
        idempotency_key="k1",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
    )


def answer(status: int, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> Outcome:
    reply = Reply(status=status, headers=headers or {}, body=body)
    return classify(reply, kw.pop("attempt", None) or attempt(), now=lambda: NOW)


@pytest.mark.parametrize("status", [200, 201])
def test_documented_success_is_synced(status: int) -> None:
    assert answer(status, CREATED) == Synced(
        provider_invoice_id="60cc8cc6aa3024abd4bef447",
        invoice_number="APP-2020-0004",
        link="https://refrens.example/view",
        pdf_url="https://refrens.example/pdf",
        response=CREATED,
    )


def test_success_without_share_or_number_keeps_ours() -> None:
    outcome = answer(200, {"_id": "abc"}, attempt=attempt(number="OURS-1"))
    assert outcome == Synced(
        provider_invoice_id="abc", invoice_number="OURS-1", response={"_id": "abc"}
    )


@pytest.mark.parametrize("body", [{"status": "UNPAID"}, "", "<html>ok</html>", [1]])
def test_success_without_an_id_may_have_created_it(body: Any) -> None:
    outcome = answer(200, body)
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True


def test_bad_request_is_rejected_with_field_errors() -> None:
    errors = {
        "billedTo.name": {"message": "Path `billedTo.name` is required.", "kind": "required"},
        "items.0.rate": {"message": 'Cast to Number failed for value "x"', "kind": "Number"},
    }
    body = feathers(400, "BadRequest", "bad-request", "Invoice validation failed", errors=errors)
    outcome = answer(400, body)
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED
    assert outcome.http_status == 400
    assert outcome.response == body
    assert "BadRequest: Invoice validation failed" in outcome.error
    assert "billedTo.name: Path `billedTo.name` is required." in outcome.error
    assert 'items.0.rate: Cast to Number failed for value "x"' in outcome.error


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Invoice number APP-2020-0004 already exists"),
        (400, "invoiceNumber must be unique"),
        (400, "Duplicate invoice number"),
        (400, "E11000 duplicate key error collection: invoices index: invoiceNumber_1"),
        (409, "invoiceNumber: APP-2020-0004 already exists."),
        (409, "Conflict"),
    ],
)
def test_duplicate_numbers_are_recognised(status: int, message: str) -> None:
    name, class_name = ("Conflict", "conflict") if status == 409 else ("BadRequest", "bad-request")
    body = feathers(status, name, class_name, message)
    reply = Reply(status=status, headers={}, body=body)
    assert is_duplicate(reply)
    outcome = answer(status, body)
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.DUPLICATE
    assert "producer collision" in outcome.error
    assert outcome.http_status == status


def test_a_duplicate_after_an_unknown_outcome_says_so() -> None:
    body = feathers(409, "Conflict", "conflict", "exists")
    outcome = answer(409, body, attempt=attempt(prior_unknown=True))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.DUPLICATE
    assert "cannot be confirmed as ours" in outcome.error


@pytest.mark.parametrize("message", ["Invoice date is invalid", "Number of items exceeded"])
def test_other_bad_requests_are_not_duplicates(message: str) -> None:
    outcome = answer(400, feathers(400, "BadRequest", "bad-request", message))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED


def test_unauthenticated_pauses_the_account() -> None:
    outcome = answer(401, NOT_AUTHENTICATED)
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert outcome.invoice == DeadLetter(
        reason=Reason.AUTH_FAILED,
        error="Refrens refused the credentials (HTTP 401): NotAuthenticated: Invalid login",
        http_status=401,
        response=NOT_AUTHENTICATED,
    )


def test_forbidden_pauses_the_account() -> None:
    body = feathers(403, "Forbidden", "forbidden", "API access is not on your plan")
    outcome = answer(403, body)
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.FORBIDDEN
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.FORBIDDEN


@pytest.mark.parametrize("status", [404, 405])
def test_unknown_business_or_path_is_misconfigured(status: int) -> None:
    body = feathers(404, "NotFound", "not-found", "No record found for urlKey 'nope'")
    outcome = answer(status, body)
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.outcome_unknown is False
    assert "url_key" in outcome.invoice.error


@pytest.mark.parametrize(
    ("header", "after"),
    [("7", 7.0), ("Wed, 01 Jul 2026 12:00:30 GMT", 30.0), (None, None), ("soon", None)],
)
def test_429_is_rate_limited_with_retry_after(header: str | None, after: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    body = feathers(429, "TooManyRequests", "too-many-requests", "Too many requests")
    outcome = answer(429, body, headers)
    assert isinstance(outcome, RateLimited)
    assert outcome.after == after
    assert outcome.http_status == 429


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, feathers(500, "GeneralError", "general-error", "Internal Server Error")),
        (502, "<html>Bad Gateway</html>"),
        (503, ""),
        (504, {"message": "timeout"}),
        (408, feathers(408, "Timeout", "timeout", "Request Timeout")),
    ],
)
def test_server_failures_are_unknown_outcomes(status: int, body: Any) -> None:
    outcome = answer(status, body)
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert outcome.http_status == status


@pytest.mark.parametrize("status", [402, 410, 413, 422])
def test_other_client_errors_are_rejected(status: int) -> None:
    outcome = answer(status, {"name": "Unprocessable", "message": "no"})
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED


def test_non_json_error_bodies_are_kept_as_text() -> None:
    outcome = answer(400, "Bad Request: malformed JSON")
    assert isinstance(outcome, DeadLetter)
    assert "Bad Request: malformed JSON" in outcome.error
    assert message_of("") == "no message"
    assert message_of({"errors": {"a": "b"}}) == "no message [a: b]"


@pytest.mark.parametrize(
    ("sent", "sending", "unknown"),
    [(True, "invoice", True), (False, "invoice", False), (True, "login", False)],
)
def test_transport_errors(sent: bool, sending: str, unknown: bool) -> None:
    outcome = classify_transport_error(TransportError("reset", sent=sent), sending=sending)
    assert outcome.outcome_unknown is unknown


@pytest.mark.parametrize("status", [400, 401])
def test_refused_login_pauses_for_auth(status: int) -> None:
    outcome = classify_login(Reply(status=status, headers={}, body=NOT_AUTHENTICATED))
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.AUTH_FAILED


@pytest.mark.parametrize(
    ("status", "kind"), [(403, PauseAccount), (429, RateLimited), (500, Retry), (418, Retry)]
)
def test_other_login_failures(status: int, kind: type) -> None:
    outcome = classify_login(Reply(status=status, headers={}, body="x"), now=lambda: NOW)
    assert isinstance(outcome, kind)
    if isinstance(outcome, Retry):
        # The invoice never left: nothing about it is unknown.
        assert outcome.outcome_unknown is False


def test_lookup_pages_and_matching() -> None:
    page = parse_page(
        Reply(status=200, headers={}, body={"total": 3, "limit": 2, "skip": 0, "data": [{}, 1]})
    )
    assert (page.data, page.total) == ([{}], 3)
    assert parse_page(Reply(status=200, headers={}, body=[{"a": 1}])).total is None
    for bad in (Reply(status=500, headers={}, body={}), Reply(status=200, headers={}, body="x")):
        with pytest.raises(ListingError):
            parse_page(bad)
    records: list[dict[str, Any]] = [
        {"invoiceNumber": "A-10"},
        {"invoiceNumber": " A-1 "},
        {"invoiceNumber": 1},
    ]
    assert match(records, "A-1") == {"invoiceNumber": " A-1 "}
    assert match(records, "A") is None
