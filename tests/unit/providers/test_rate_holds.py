"""How long an answer's rate-limit headers hold an account, for every adapter: what the provider
says (Retry-After, X-RateLimit-Reset), else the period of the account's own ``rate_limit``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.durations import RateLimit, parse_rate
from worker.invoice import parse_invoice
from worker.outcome import Outcome, RateLimited, Synced
from worker.providers.base import Attempt
from worker.providers.billclap import answers as billclap_answers
from worker.providers.billit import answers as billit_answers
from worker.providers.http import Reply
from worker.providers.refrens import answers as refrens_answers

NOW = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
SPENT = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"}
BILLCLAP_OK = {"result": {"status": True, "invoice_id": 7, "link": "https://b/7", "code": 200}}
REFRENS_OK = {"_id": "r7", "invoiceNumber": "WEB-1", "share": {"link": "https://r/7"}}
BILLIT_OK = {"data": {"uuid": "u7", "number": 7, "type": {"series": "A"}}}


def attempt(rate: RateLimit | None) -> Attempt:
    doc = {
        "number": "WEB-1",
        "cash_sale": True,
        "lines": [{"name": "X", "quantity": 1, "unit_price": 1}],
    }
    return Attempt(
        outbox_id=1,
        account="acme",
        idempotency_key="k1",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=False,
        rate=rate,
    )


def billclap(status: int, body: Any, headers: dict[str, str], rate: RateLimit | None) -> Outcome:
    reply = Reply(status=status, headers=headers, body=body)
    return billclap_answers.classify(reply, attempt(rate), now=lambda: NOW)


def refrens(status: int, body: Any, headers: dict[str, str], rate: RateLimit | None) -> Outcome:
    reply = Reply(status=status, headers=headers, body=body)
    return refrens_answers.classify(reply, attempt(rate), now=lambda: NOW)


def billit(status: int, body: Any, headers: dict[str, str], rate: RateLimit | None) -> Outcome:
    reply = Reply(status=status, headers=headers, body=body)
    window = attempt(rate).rate_window(billit_answers.RATE_WINDOW)
    return billit_answers.classify(
        reply, what="invoice create", creating=True, window=window, now=lambda: NOW
    )


Classify = Callable[[int, Any, dict[str, str], RateLimit | None], Outcome]
ADAPTERS: list[tuple[Classify, Any]] = [
    (billclap, BILLCLAP_OK),
    (refrens, REFRENS_OK),
    (billit, BILLIT_OK),
]


@pytest.mark.parametrize(("classify", "body"), ADAPTERS)
@pytest.mark.parametrize(
    ("rate", "hold"), [("10/second", 1.0), ("5/10s", 10.0), ("60/minute", 60.0)]
)
def test_a_spent_quota_without_a_reset_holds_for_the_accounts_rate_window(
    classify: Classify, body: Any, rate: str, hold: float
) -> None:
    outcome = classify(201, body, SPENT, parse_rate(rate))
    assert isinstance(outcome, Synced), outcome
    assert outcome.quota_wait == hold


@pytest.mark.parametrize(("classify", "body"), ADAPTERS)
def test_a_reset_the_provider_gives_wins_over_the_window(classify: Classify, body: Any) -> None:
    rate = parse_rate("10/minute")
    epoch = str(int(NOW.timestamp()) + 3)
    for headers, hold in [
        ({**SPENT, "Retry-After": "2"}, 2.0),
        ({**SPENT, "X-RateLimit-Reset": "0.5"}, 0.5),
        ({**SPENT, "X-RateLimit-Reset": epoch}, 3.0),
    ]:
        outcome = classify(200, body, headers, rate)
        assert isinstance(outcome, Synced), outcome
        assert outcome.quota_wait == hold


@pytest.mark.parametrize(("classify", "body"), ADAPTERS)
def test_quota_left_holds_nothing(classify: Classify, body: Any) -> None:
    outcome = classify(200, body, {"X-RateLimit-Remaining": "1"}, parse_rate("10/second"))
    assert isinstance(outcome, Synced), outcome
    assert outcome.quota_wait is None


@pytest.mark.parametrize(("classify", "body"), ADAPTERS)
def test_a_429_with_only_a_reset_header_waits_for_the_reset(classify: Classify, body: Any) -> None:
    headers = {**SPENT, "X-RateLimit-Reset": str(int(NOW.timestamp()) + 4)}
    outcome = classify(429, {"message": "Too Many Attempts."}, headers, parse_rate("10/second"))
    assert isinstance(outcome, RateLimited), outcome
    assert outcome.after == 4.0


def test_billit_without_a_configured_rate_uses_its_documented_minute() -> None:
    outcome = billit(201, BILLIT_OK, SPENT, None)
    assert isinstance(outcome, Synced)
    assert outcome.quota_wait == 60.0
