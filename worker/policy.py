"""What a provider's outcome means for the outbox row: a pure function, so the policy (retry
budget, backoff, Retry-After, pauses) is tested without a database or a clock.

Retry timing is a pure function of the attempt count and a random draw too (River's
``NextRetryAt``): no sleeps in here, the delay is stored in ``available_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from worker.claims import AccountAction, Claimed, Resolution
from worker.config import WorkerSettings
from worker.outcome import (
    DeadLetter,
    Fate,
    Health,
    Outcome,
    PauseAccount,
    RateLimited,
    Reason,
    Retry,
    Synced,
    health_of,
)
from worker.texts import cut, web_address
from worker.values import immutable

# A provider's Retry-After is honoured, but a broken header must not park a row for a year.
MAX_RETRY_AFTER = 24 * 3600.0


def retry_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter spreads the retries of a burst of failures evenly instead of sending them back
    in synchronised waves (AWS Architecture Blog, "Exponential Backoff And Jitter").
    """
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return rand() * ceiling


def honour_retry_after(after: float | None, fallback: float) -> float:
    """A provider's Retry-After wins over our own backoff, clamped to a sane range."""
    if after is None:
        return fallback
    return min(max(after, 0.0), MAX_RETRY_AFTER)


# When a provider says "slow down" without saying for how long.
DEFAULT_RATE_LIMIT_WAIT = 60.0


@immutable
class Decision:
    resolution: Resolution
    account_action: AccountAction | None = None
    fate: Fate
    """Reported under its log event and counted under its metric label once it is written."""
    health: Health | None = None
    """What the call said about the provider, for the account's breaker (None: no call)."""


def decide(
    outcome: Outcome,
    row: Claimed,
    *,
    provider: str,
    settings: WorkerSettings,
    rand: Callable[[], float],
    now: datetime,
) -> Decision:
    """Map one attempt's outcome to the row's fate (and the account's, for pauses)."""
    if isinstance(outcome, Synced):
        # Nearly every outcome: built with its health at once, as ``replace`` (a second
        # Decision, made field by field) cost a third of deciding a success.
        return _synced(outcome, row, provider)
    decision = _decide(outcome, row, provider=provider, settings=settings, rand=rand, now=now)
    return replace(decision, health=health_of(outcome))


def _decide(
    outcome: Outcome,
    row: Claimed,
    *,
    provider: str,
    settings: WorkerSettings,
    rand: Callable[[], float],
    now: datetime,
) -> Decision:
    if isinstance(outcome, Synced):
        return _synced(outcome, row, provider)
    if isinstance(outcome, DeadLetter):
        return dead_letter(
            row, outcome.reason, outcome.error, outcome.http_status, outcome.response
        )
    if isinstance(outcome, RateLimited):
        return _rate_limited(outcome, row)
    if isinstance(outcome, PauseAccount):
        inner = _decide(
            outcome.invoice, row, provider=provider, settings=settings, rand=rand, now=now
        )
        pause = AccountAction(
            account=row.account,
            pause_reason=outcome.reason.value,
            pause_error=outcome.invoice.error,
            probe_in=settings.pause_cooldown,
        )
        return Decision(resolution=inner.resolution, account_action=pause, fate=inner.fate)
    return _retry(outcome, row, settings, rand, now)


# The longest provider id and invoice number, and the longest link, a synced row keeps; longer
# ones are ``cut``. No provider issues such; a hostile one can, and past some 2,700 bytes the
# synced table's indexes refuse the row, which failed its flush, and every other row in it, at
# each try for ever.
ID_LIMIT = 200
LINK_LIMIT = 2048


def _kept(text: str | None, limit: int) -> str | None:
    return None if text is None else cut(text, limit)


def _kept_link(text: str | None) -> str | None:
    """A provider's link or PDF address, if it is a web address (else dropped: the answer the
    synced row keeps still holds it)."""
    return _kept(text, LINK_LIMIT) if text is not None and web_address(text) else None


def _synced(outcome: Synced, row: Claimed, provider: str) -> Decision:
    resolution = Resolution(
        id=row.id,
        claim=row.claim,
        kind="synced",
        provider=provider,
        provider_invoice_id=_kept(outcome.provider_invoice_id, ID_LIMIT),
        invoice_number=_kept(outcome.invoice_number, ID_LIMIT),
        link=_kept_link(outcome.link),
        pdf_url=_kept_link(outcome.pdf_url),
        response=outcome.response,
        recovered=outcome.recovered,
    )
    throttle = None
    if outcome.quota_wait:
        wait = honour_retry_after(outcome.quota_wait, DEFAULT_RATE_LIMIT_WAIT)
        throttle = AccountAction(account=row.account, throttle=wait)
    return Decision(
        resolution=resolution, account_action=throttle, fate=Fate.SYNCED, health=health_of(outcome)
    )


def _retry(
    outcome: Retry,
    row: Claimed,
    settings: WorkerSettings,
    rand: Callable[[], float],
    now: datetime,
) -> Decision:
    spent = _budget_spent(row, settings, now)
    if spent is not None:
        error = f"{spent}; last error: {outcome.error}"
        return dead_letter(
            row,
            Reason.EXHAUSTED,
            error,
            outcome.http_status,
            outcome.response,
            unknown=outcome.outcome_unknown,
        )
    backoff = retry_delay(
        row.attempt, base=settings.base_retry_delay, cap=settings.max_retry_delay, rand=rand
    )
    resolution = Resolution(
        id=row.id,
        claim=row.claim,
        kind="retry",
        delay=honour_retry_after(outcome.after, backoff),
        # Once an attempt may have reached the provider, every later attempt must take the safe
        # path, even if a later one failed cleanly.
        unknown=row.prior_unknown or outcome.outcome_unknown,
        error=outcome.error,
        http_status=outcome.http_status,
        response=outcome.response,  # not kept on the row; the attempt history keeps it
    )
    return Decision(resolution=resolution, fate=Fate.RETRY_SCHEDULED)


def _budget_spent(row: Claimed, settings: WorkerSettings, now: datetime) -> str | None:
    """Why the retry budget is spent (attempts or age), or None while it is not."""
    if row.attempt >= settings.max_attempts:
        return f"gave up after {row.attempt} attempts"
    age = (now - row.first_attempt_at).total_seconds()
    if age >= settings.max_age:
        return f"gave up after {row.attempt} attempts over {age / 3600:.1f} h (max_age)"
    return None


def _rate_limited(outcome: RateLimited, row: Claimed) -> Decision:
    wait = honour_retry_after(outcome.after, DEFAULT_RATE_LIMIT_WAIT)
    resolution = replace(
        release(row, delay=wait, error=outcome.error),
        # For the attempt history only: the row goes back to pending as if never sent.
        http_status=outcome.http_status,
        response=outcome.response,
    )
    throttle = AccountAction(account=row.account, throttle=wait)
    return Decision(resolution=resolution, account_action=throttle, fate=Fate.RATE_LIMITED)


def dead_letter(
    row: Claimed,
    reason: Reason,
    error: str,
    http_status: int | None = None,
    response: object = None,
    *,
    unknown: bool = False,
) -> Decision:
    """The row to the dead letters. ``unknown``: this attempt may have reached the provider;
    an earlier one may have (``row.prior_unknown``) in any case. Either way the dead letter says
    so, and its key is not enqueued again until an operator replays or purges it."""
    resolution = Resolution(
        id=row.id,
        claim=row.claim,
        kind="dead",
        unknown=row.prior_unknown or unknown,
        reason=reason.value,
        error=error,
        http_status=http_status,
        response=response,
    )
    return Decision(resolution=resolution, fate=Fate.DEAD_LETTERED)


def release(
    row: Claimed, *, delay: float = 0.0, error: str | None = None, sent: bool = False
) -> Resolution:
    """Give the row back without spending its attempt (not sent, or sent and cut short)."""
    return Resolution(
        id=row.id,
        claim=row.claim,
        kind="retry",
        delay=delay,
        # A call cut short after it went out spends the attempt and leaves the outcome unknown.
        spend=sent,
        unknown=row.prior_unknown or sent,
        error=error,
    )
