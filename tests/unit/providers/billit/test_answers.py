"""Billit's answers → outcomes, and the tag scan's pure parts; no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

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
from worker.providers.billit.answers import (
    classify,
    classify_transport_error,
    field_errors,
    incident_of,
    message_of,
    refuses_account_ids,
    refuses_customer_id,
    synced_from,
)
from worker.providers.billit.index import Listed, TagCache, tags_of
from worker.providers.billit.reconcile import Expected, could_be
from worker.providers.http import Reply

NOW = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
CREATED = {
    "data": {
        "uuid": "7f0c1c9e-1b2a-4c47-9a70-3f1f1d2c8e11",
        "number": 123,
        "type": {"id": 1, "series": "A", "name": "Sales invoice"},
        "permalink": "https://app.billit.io/view/invoice/7f0c1c9e",
        "finalAmount": 124.0,
        "tags": [{"id": 9, "name": "invoice-sync:k-1"}],
    }
}
VALIDATION = {
    "statusCode": 422,
    "error": "Unprocessable Entity",
    "message": "The given data was invalid.",
    "errors": {
        "customerId": ["The selected customer id is invalid."],
        "products.0.vatId": ["The selected products.0.vatId is invalid."],
    },
}


def reply(status: int, body: Any = "", headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, headers=headers or {}, body=body)


def billit_error(status: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"statusCode": status, "error": "x", "message": message, "data": data}


def create(answer: Reply, *, seen_incident: bool = False) -> Outcome:
    return classify(
        answer, what="invoice create", creating=True, seen_incident=seen_incident, now=lambda: NOW
    )


def side(answer: Reply, *, seen_incident: bool = False) -> Outcome:
    return classify(
        answer, what="account", creating=False, seen_incident=seen_incident, now=lambda: NOW
    )


# --- success --------------------------------------------------------------------------------


def test_created_is_synced_with_series_number_link_and_pdf() -> None:
    outcome = create(reply(201, CREATED))
    assert outcome == Synced(
        provider_invoice_id="7f0c1c9e-1b2a-4c47-9a70-3f1f1d2c8e11",
        invoice_number="A-123",
        link="https://app.billit.io/view/invoice/7f0c1c9e",
        pdf_url="https://app.billit.io/view/invoice/7f0c1c9e/pdf",
        response=CREATED,
        recovered=False,
    )


@pytest.mark.parametrize(
    ("data", "number", "pdf"),
    [
        ({"uuid": "u", "number": 5}, "5", None),
        ({"uuid": "u", "number": 5, "type": {"series": ""}}, "5", None),
        ({"uuid": "u", "permalink": "https://p/x/"}, None, "https://p/x/pdf"),
    ],
)
def test_synced_tolerates_missing_parts(
    data: dict[str, Any], number: str | None, pdf: str | None
) -> None:
    synced = synced_from({"data": data}, recovered=True)
    assert synced is not None
    assert (synced.invoice_number, synced.pdf_url, synced.recovered) == (number, pdf, True)


@pytest.mark.parametrize("body", ["", {"data": {}}, {"data": {"uuid": ""}}, {"uuid": "u"}, [1]])
def test_success_without_a_uuid_is_an_unknown_outcome(body: Any) -> None:
    outcome = create(reply(201, body))
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True


# --- refusals -------------------------------------------------------------------------------


def test_422_is_rejected_with_the_errors_map() -> None:
    outcome = create(reply(422, VALIDATION))
    assert outcome == DeadLetter(
        reason=Reason.REJECTED,
        error=(
            "Billit invoice create: refused (HTTP 422): The given data was invalid. | "
            "customerId: The selected customer id is invalid. | "
            "products.0.vatId: The selected products.0.vatId is invalid."
        ),
        http_status=422,
        response=VALIDATION,
    )


def test_errors_under_data_are_read_too() -> None:
    body = billit_error(422, "invalid", {"errors": {"invoiceDate": "bad"}})
    assert field_errors(body) == {"invoiceDate": "bad"}
    assert message_of(body) == "invalid | invoiceDate: bad"
    assert message_of("plain text") == "plain text"
    assert message_of({}) == "no message"


def test_422_about_account_ids_is_recognised() -> None:
    assert refuses_account_ids(reply(422, VALIDATION))
    assert refuses_account_ids(reply(422, {"errors": {"paymentMethod.0": ["x"]}}))
    assert refuses_account_ids(reply(422, {"errors": {"billerId": ["x"]}}))
    assert not refuses_account_ids(reply(422, {"errors": {"customerId": ["x"]}}))
    assert not refuses_account_ids(reply(400, VALIDATION))
    assert refuses_customer_id(reply(422, VALIDATION))
    assert not refuses_customer_id(reply(422, {"errors": {"billerId": ["x"]}}))
    assert not refuses_customer_id(reply(500, VALIDATION))


def test_400_incident_is_retried_once_then_rejected() -> None:
    answer = reply(400, billit_error(400, "Bad Request", {"insidentId": "abc123"}))
    first = create(answer)
    assert isinstance(first, Retry)
    assert (first.outcome_unknown, first.http_status) == (False, 400)
    assert "abc123" in first.error
    second = create(answer, seen_incident=True)
    assert isinstance(second, DeadLetter)
    assert (second.reason, second.http_status) == (Reason.REJECTED, 400)
    assert incident_of(answer.body) == "abc123"


def test_400_without_an_incident_is_rejected_at_once() -> None:
    outcome = create(reply(400, billit_error(400, "Malformed request")))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED
    assert incident_of({"data": {"insidentId": ""}}) is None


@pytest.mark.parametrize(
    ("status", "pause", "reason"),
    [
        (401, PauseReason.AUTH_FAILED, Reason.AUTH_FAILED),
        (403, PauseReason.FORBIDDEN, Reason.FORBIDDEN),
    ],
)
@pytest.mark.parametrize("creating", [True, False])
def test_401_and_403_pause_the_account(
    status: int, pause: PauseReason, reason: Reason, creating: bool
) -> None:
    body = billit_error(status, "Authorization Required")
    outcome = classify(reply(status, body), what="x", creating=creating)
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is pause
    assert isinstance(outcome.invoice, DeadLetter)
    assert (outcome.invoice.reason, outcome.invoice.http_status) == (reason, status)
    assert "Authorization Required" in outcome.invoice.error


@pytest.mark.parametrize("status", [404, 405, 406, 415])
def test_our_mistakes_pause_as_misconfigured_and_the_invoice_waits(status: int) -> None:
    outcome = create(reply(status, billit_error(status, "Resource not found")))
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.outcome_unknown is False
    assert outcome.invoice.http_status == status


@pytest.mark.parametrize("status", [409, 410, 413])
def test_other_4xx_are_rejected(status: int) -> None:
    outcome = create(reply(status, billit_error(status, "nope")))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED


# --- slow down, failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "after"),
    [
        ({"Retry-After": "42"}, 42.0),
        ({"Retry-After": "Wed, 01 Jul 2026 12:00:30 GMT"}, 30.0),
        ({}, 60.0),
        ({"Retry-After": "soon"}, 60.0),
    ],
)
def test_429_is_rate_limited(headers: dict[str, str], after: float) -> None:
    body = billit_error(429, "Too Many Attempts.")
    for outcome in (create(reply(429, body, headers)), side(reply(429, body, headers))):
        assert isinstance(outcome, RateLimited)
        assert outcome.after == after
        assert "Too Many Attempts." in outcome.error


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_failures_are_unknown_only_for_the_create(status: int) -> None:
    body = billit_error(status, "Server Error", {"insidentId": "i-1"})
    created = create(reply(status, body))
    assert isinstance(created, Retry)
    assert (created.outcome_unknown, created.http_status) == (True, status)
    other = side(reply(status, body))
    assert isinstance(other, Retry)
    assert other.outcome_unknown is False
    assert "nothing was created" in other.error


def test_transport_errors() -> None:
    sent = TransportError("timed out waiting for the answer", sent=True)
    unsent = TransportError("cannot connect", sent=False)
    assert classify_transport_error(sent, what="invoice create", creating=True).outcome_unknown
    for exc, creating in ((unsent, True), (sent, False), (unsent, False)):
        outcome = classify_transport_error(exc, what="account", creating=creating)
        assert outcome.outcome_unknown is False
        assert "nothing was created" in outcome.error


def test_a_success_to_a_side_call_is_not_classified_as_synced() -> None:
    outcome = side(reply(200, CREATED))
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is False


# --- the tag scan ---------------------------------------------------------------------------


def candidates(items: list[dict[str, Any]], expected: Expected) -> list[str]:
    """The uuids of list items the tag scan would fetch, in list order."""
    listed = [entry for entry in map(Listed.of, items) if entry is not None]
    return [entry.uuid for entry in listed if could_be(entry, expected)]


def carries_tag(body: Any, tag: str) -> bool:
    return tag in tags_of(body)


EXPECTED = Expected(tag="invoice-sync:k-1", invoice_date="2026-07-01", total=Decimal("124.00"))


@pytest.mark.parametrize(
    ("item", "kept"),
    [
        ({"uuid": "a"}, True),
        (
            {"uuid": "a", "customer": {"id": 42}, "invoiceDate": "2026-07-01", "finalAmount": 124},
            True,
        ),
        ({"uuid": "a", "customerId": "42"}, True),
        # Another customer id is kept: replicas racing may have created the customer twice.
        ({"uuid": "a", "customer": {"id": 43}}, True),
        ({"uuid": "a", "customerId": 43}, True),
        ({"uuid": "a", "invoiceDate": "2026-07-02"}, False),
        ({"uuid": "a", "invoiceDate": "2026-07-01T00:00:00+03:00"}, True),
        ({"uuid": "a", "finalAmount": "124.10"}, True),
        ({"uuid": "a", "finalAmount": "125.20"}, False),
        ({"uuid": "a", "finalAmount": 126}, False),
        ({"uuid": "a", "finalAmount": "n/a"}, True),
        ({"number": 1}, False),
    ],
)
def test_candidates_narrow_only_on_what_an_item_shows(item: dict[str, Any], kept: bool) -> None:
    assert candidates([item], EXPECTED) == (["a"] if kept else [])


def test_candidates_without_a_fixed_date_or_total_keep_more() -> None:
    # No issue_date: the earlier attempt sent its own "today", maybe the day before.
    loose = Expected(tag="t", invoice_date=None, total=None)
    items: list[dict[str, Any]] = [
        {"uuid": "a", "invoiceDate": "2026-06-30", "finalAmount": 9999},
        {"uuid": "b"},
    ]
    assert candidates(items, loose) == ["a", "b"]


@pytest.mark.parametrize(
    ("tags", "found"),
    [
        ([{"id": 9, "name": "invoice-sync:k-1"}], True),
        ([{"id": 9, "tag": {"text": " invoice-sync:k-1 "}}], True),
        (["invoice-sync:k-1"], True),
        ([{"id": 9, "name": "invoice-sync:k-10"}], False),
        ([{"id": 9, "slug": "invoice-sync-k-1"}], False),
        ([], False),
        (None, False),
    ],
)
def test_tags_are_matched_in_any_string_value(tags: Any, found: bool) -> None:
    assert carries_tag({"data": {"uuid": "u", "tags": tags}}, "invoice-sync:k-1") is found
    assert not carries_tag("not json", "invoice-sync:k-1")


def test_tags_of_collects_every_string() -> None:
    body = {"data": {"tags": [{"id": 1, "name": " a "}, "b", {"x": [{"y": "c"}], "n": 3}]}}
    assert tags_of(body) == frozenset({"a", "b", "c"})
    assert tags_of({"data": {}}) == frozenset()


def test_the_tag_cache_is_bounded_and_keeps_the_newest() -> None:
    memory = TagCache(limit=2)
    for uuid in ("u1", "u2", "u3"):
        memory.remember(uuid, frozenset({uuid}))
    assert memory.known("u1") is None
    assert memory.known("u3") == frozenset({"u3"})
    memory.remember("u2", frozenset({"again"}))
    memory.remember("u4", frozenset())
    assert (memory.known("u2"), memory.known("u3")) == (frozenset({"again"}), None)
