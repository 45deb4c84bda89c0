from datetime import UTC, datetime, timedelta

import pytest

from worker.claims import Claimed
from worker.config import WorkerSettings
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
from worker.policy import MAX_RETRY_AFTER, decide, honour_retry_after, retry_delay

SETTINGS = WorkerSettings(
    max_attempts=5, base_retry_delay=2, max_retry_delay=60, pause_cooldown=300
)


NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def row(attempt: int = 1, prior_unknown: bool = False, age: float = 0.0) -> Claimed:
    first = NOW - timedelta(seconds=age)
    return Claimed(
        id=7,
        account="shop",
        idempotency_key="k",
        payload="{}",
        attempt=attempt,
        claim=attempt,
        first_attempt_at=first,
        created_at=first,
        prior_unknown=prior_unknown,
        probe=False,
    )


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60)]
)
def test_backoff_grows_exponentially_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert retry_delay(attempt, base=2, cap=60, rand=lambda: 1.0) == ceiling
    assert retry_delay(attempt, base=2, cap=60, rand=lambda: 0.0) == 0  # full jitter reaches 0


def test_retry_after_wins_and_is_clamped() -> None:
    assert honour_retry_after(None, 5) == 5
    assert honour_retry_after(120, 5) == 120
    assert honour_retry_after(-3, 5) == 0
    assert honour_retry_after(10**9, 5) == MAX_RETRY_AFTER


def test_retry_schedules_with_backoff_and_keeps_unknown_sticky() -> None:
    d = decide(
        Retry(error="e"),
        row(attempt=2, prior_unknown=True),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 0.5,
        now=NOW,
    )
    assert d.resolution.kind == "retry"
    assert d.resolution.delay == 2.0  # 0.5 * 2 * 2
    assert d.resolution.unknown is True
    assert d.resolution.spend is True


def test_retry_budget_spent_dead_letters_as_exhausted() -> None:
    d = decide(
        Retry(error="HTTP 500"),
        row(attempt=5),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 1,
        now=NOW,
    )
    assert d.resolution.kind == "dead"
    assert d.resolution.reason == "exhausted"
    assert "HTTP 500" in (d.resolution.error or "")


def test_rate_limited_gives_the_attempt_back_and_throttles_the_account() -> None:
    d = decide(
        RateLimited(error="429", after=30),
        row(),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 1,
        now=NOW,
    )
    assert d.resolution.spend is False
    assert d.resolution.delay == 30
    assert d.account_action is not None
    assert d.account_action.throttle == 30


def test_pause_applies_the_inner_fate_and_pauses() -> None:
    outcome = PauseAccount(
        reason=PauseReason.CREDITS_EXPIRED,
        invoice=DeadLetter(reason=Reason.CREDITS_EXPIRED, error="Credits Expired!!!"),
    )
    d = decide(outcome, row(), provider="p", settings=SETTINGS, rand=lambda: 1, now=NOW)
    assert d.resolution.kind == "dead"
    assert d.resolution.reason == "credits_expired"
    assert d.account_action is not None
    assert d.account_action.pause_reason == "credits_expired"
    assert d.account_action.probe_in == 300


def test_synced_carries_the_provider_ids() -> None:
    outcome = Synced(provider_invoice_id="9", invoice_number="N", link="L", recovered=True)
    d = decide(outcome, row(), provider="billclap", settings=SETTINGS, rand=lambda: 1, now=NOW)
    assert (d.resolution.kind, d.resolution.provider, d.resolution.recovered) == (
        "synced",
        "billclap",
        True,
    )


def test_retry_budget_by_age_gives_up_with_exhausted() -> None:
    young = decide(
        Retry(error="HTTP 503"),
        row(attempt=2, age=3600),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 1,
        now=NOW,
    )
    assert young.resolution.kind == "retry"
    old = decide(
        Retry(error="HTTP 503"),
        row(attempt=2, age=86_400),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 1,
        now=NOW,
    )
    assert old.resolution.kind == "dead"
    assert old.resolution.reason == "exhausted"
    assert "max_age" in (old.resolution.error or "")
    assert "HTTP 503" in (old.resolution.error or "")


@pytest.mark.parametrize(
    ("outcome", "health"),
    [
        (Synced(provider_invoice_id="1"), "up"),
        (DeadLetter(reason=Reason.REJECTED, error="bad"), "up"),
        (Retry(error="HTTP 502"), "down"),
        (RateLimited(error="429"), None),
        (PauseAccount(reason=PauseReason.AUTH_FAILED, invoice=Retry(error="401")), None),
    ],
)
def test_decisions_say_what_the_call_told_about_the_provider(
    outcome: Outcome, health: str | None
) -> None:
    d = decide(outcome, row(), provider="p", settings=SETTINGS, rand=lambda: 1, now=NOW)
    assert d.health == health


def test_a_spent_quota_on_success_throttles_the_account() -> None:
    outcome = Synced(provider_invoice_id="9", quota_wait=42)
    d = decide(outcome, row(), provider="billit", settings=SETTINGS, rand=lambda: 1, now=NOW)
    assert d.resolution.kind == "synced"
    assert d.account_action is not None
    assert d.account_action.throttle == 42


@pytest.mark.parametrize(
    ("link", "kept"),
    [
        ("https://app.billclap.com/preview/1/", True),
        ("HTTP://provider.example/invoice/1", True),
        ("javascript:alert(document.cookie)", False),
        (" https://x/1", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
    ],
)
def test_only_web_addresses_are_kept_as_links(link: str, kept: bool) -> None:
    # A hostile provider's javascript: link was stored and became a link on the console's
    # invoice page (and a line of `invoice-sync show`).
    d = decide(
        Synced(provider_invoice_id="1", link=link, pdf_url=link),
        row(),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 0.5,
        now=NOW,
    )
    assert (d.resolution.link, d.resolution.pdf_url) == ((link, link) if kept else (None, None))


@pytest.mark.parametrize(("prior_unknown", "unknown"), [(False, False), (True, True)])
def test_a_dead_letter_says_whether_an_attempt_may_have_reached_the_provider(
    prior_unknown: bool, unknown: bool
) -> None:
    refused = DeadLetter(reason=Reason.REJECTED, error="no")
    d = decide(
        refused,
        row(prior_unknown=prior_unknown),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 0.5,
        now=NOW,
    )
    assert (d.resolution.kind, d.resolution.unknown) == ("dead", unknown)
    # Retries run out after a timeout: the last attempt's outcome is unknown.
    spent = decide(
        Retry(error="timed out", outcome_unknown=True),
        row(attempt=5),
        provider="p",
        settings=SETTINGS,
        rand=lambda: 0.5,
        now=NOW,
    )
    assert (spent.resolution.kind, spent.resolution.reason, spent.resolution.unknown) == (
        "dead",
        "exhausted",
        True,
    )
