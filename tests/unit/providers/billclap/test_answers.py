"""BillClap's answers → outcomes, straight from the response tables in its document."""

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
from worker.providers.billclap.adapter import classify, classify_transport_error
from worker.providers.http import Reply, retry_after

NOW = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
SUCCESS = {
    "status": True,
    "message": "Invoice created successfully",
    "invoice_id": 12345,
    "link": "https://app.billclap.com/preview/12345/abc123token",
    "code": 200,
}
PERMISSION = "You don't have permission to access this resource: API integration"


def attempt(*, number: str | None = "WEB-1", prior_unknown: bool = False) -> Attempt:
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


def error_body(message: str) -> dict[str, Any]:
    return {"status": False, "error": message}


def test_documented_success_is_synced() -> None:
    outcome = answer(200, {"result": SUCCESS})
    assert outcome == Synced(
        provider_invoice_id="12345",
        invoice_number="WEB-1",
        link="https://app.billclap.com/preview/12345/abc123token",
        pdf_url=None,
        response={"result": SUCCESS},
    )


def test_flat_success_is_synced_too() -> None:
    outcome = answer(200, SUCCESS)
    assert isinstance(outcome, Synced)
    assert outcome.provider_invoice_id == "12345"
    assert outcome.link == SUCCESS["link"]


def test_success_without_our_number_records_none() -> None:
    outcome = answer(200, {"result": SUCCESS}, attempt=attempt(number=None))
    assert isinstance(outcome, Synced)
    assert outcome.invoice_number is None


@pytest.mark.parametrize(
    "message", ["API token is required", "Invalid token type", "jwt expired", "invalid signature"]
)
def test_every_401_pauses_the_account_for_auth(message: str) -> None:
    body = {"status": False, "message": message}
    outcome = answer(401, body)
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.AUTH_FAILED
    assert outcome.invoice.http_status == 401
    assert outcome.invoice.response == body
    assert message in outcome.invoice.error


def test_plan_without_api_is_forbidden_even_with_http_200() -> None:
    body = {"status": False, "error": PERMISSION, "message": "Upgrade your plan"}
    outcome = answer(200, body)
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.FORBIDDEN
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.FORBIDDEN
    assert outcome.invoice.http_status == 200


def test_credits_expired_pauses_the_account() -> None:
    outcome = answer(500, error_body("Credits Expired!!!"))
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.CREDITS_EXPIRED
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.CREDITS_EXPIRED
    assert outcome.invoice.http_status == 500


def test_business_not_found_pauses_but_keeps_the_invoice() -> None:
    outcome = answer(500, error_body("Business not found"))
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.outcome_unknown is False


def test_duplicate_on_a_first_attempt_is_a_producer_collision() -> None:
    outcome = answer(500, error_body("Invoice number already exists"))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.DUPLICATE
    assert "another invoice already uses this number" in outcome.error
    assert "unknown" not in outcome.error


def test_duplicate_after_an_unknown_outcome_says_it_is_probably_ours() -> None:
    outcome = answer(
        500, error_body("Invoice number already exists"), attempt=attempt(prior_unknown=True)
    )
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.DUPLICATE
    for phrase in ("outcome was unknown", "no lookup", "probably", "verify it in BillClap"):
        assert phrase in outcome.error
    assert "WEB-1" in outcome.error


@pytest.mark.parametrize(
    "message",
    [
        "Party detail is required",
        "Mobile number or cash sale is required",
        "Product name is required",
        "Product sell price and gst is required",
        "Received amount can not be greater than invoice total amount",
    ],
)
def test_documented_validation_errors_are_rejected(message: str) -> None:
    outcome = answer(500, error_body(message))
    assert outcome == DeadLetter(
        reason=Reason.REJECTED, error=message, http_status=500, response=error_body(message)
    )


@pytest.mark.parametrize(
    "message",
    ["  CREDITS EXPIRED!!! ", "credits expired", "Error: Credits  Expired!!!"],
)
def test_messages_match_tolerantly(message: str) -> None:
    outcome = answer(500, error_body(message))
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.CREDITS_EXPIRED


def test_curly_apostrophe_and_cannot_still_match() -> None:
    forbidden = answer(200, error_body(PERMISSION.replace("'", "\u2019")))
    assert isinstance(forbidden, PauseAccount)
    rejected = answer(
        500, error_body("Received amount cannot be greater than invoice total amount")
    )
    assert isinstance(rejected, DeadLetter)
    assert rejected.reason is Reason.REJECTED


@pytest.mark.parametrize(
    "body",
    [error_body("connect ECONNREFUSED 10.0.0.5:5432"), "<html>oops</html>", "", {"status": False}],
)
def test_other_500s_may_have_created_the_invoice(body: Any) -> None:
    outcome = answer(500, body)
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert outcome.http_status == 500


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_unknown_outcomes(status: int) -> None:
    outcome = answer(status, "<html>Bad Gateway</html>")
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert outcome.http_status == status


def test_a_message_decides_not_the_status() -> None:
    # A business message on a gateway status is still that business error.
    outcome = answer(502, error_body("Invoice number already exists"))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.DUPLICATE


@pytest.mark.parametrize(
    "body", [{"result": {"status": True, "message": "ok"}}, {}, "", {"status": False, "error": "?"}]
)
def test_200_without_an_invoice_id_may_have_created_it(body: Any) -> None:
    outcome = answer(200, body)
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True


@pytest.mark.parametrize("status", [404, 405])
def test_wrong_endpoint_pauses_as_misconfigured(status: int) -> None:
    outcome = answer(status, "Cannot POST /api/web/invoice/create-invoice")
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.outcome_unknown is False


@pytest.mark.parametrize(
    ("header", "after"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "Wed, 01 Jul 2026 12:02:00 GMT"}, 120.0),
        ({"Retry-After": "Wed, 01 Jul 2026 11:00:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({}, None),
    ],
)
def test_429_is_rate_limited_with_retry_after(header: dict[str, str], after: float | None) -> None:
    outcome = answer(429, {"status": False, "message": "Too many requests"}, headers=header)
    assert isinstance(outcome, RateLimited)
    assert outcome.after == after
    assert outcome.http_status == 429


def test_retry_after_http_date_without_zone_is_utc() -> None:
    assert retry_after("Wed, 01 Jul 2026 12:00:10", NOW) == 10.0


def test_unexpected_4xx_is_rejected_with_evidence() -> None:
    outcome = answer(400, {"message": "Bad Request"})
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED
    assert outcome.http_status == 400


def test_transport_error_before_sending_is_a_plain_retry() -> None:
    outcome = classify_transport_error(TransportError("cannot connect: refused", sent=False))
    assert outcome == Retry(
        error="BillClap: cannot connect: refused; the request was not sent",
        outcome_unknown=False,
    )


def test_transport_error_after_sending_is_an_unknown_outcome() -> None:
    outcome = classify_transport_error(TransportError("timed out", sent=True))
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True


def test_huge_answers_are_bounded() -> None:
    outcome = answer(500, error_body("x" * 100_000))
    assert isinstance(outcome, Retry)
    assert outcome.response["truncated"] is True
