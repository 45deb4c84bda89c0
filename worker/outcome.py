"""The values a provider call returns; each decides what happens to the outbox row.

A provider adapter never touches the database: it returns one of these and the engine applies
it (Oban's ``perform/1`` return values, River's ``JobCancel``/``JobSnooze``).

- ``Synced``: the provider holds the invoice; the row moves to ``invoice_sync.synced``.
- ``Retry``: try again later; ``outcome_unknown`` marks an attempt that may have reached the
  provider, so the next attempt must take a safe path (same number, lookup, tag scan).
- ``RateLimited``: the provider asked us to slow down; the row is rescheduled without spending
  an attempt, and the account waits ``after`` seconds.
- ``DeadLetter``: a human must look; the row moves to ``invoice_sync.dead_letter``.
- ``PauseAccount``: the account itself is broken (credits, token, plan, our configuration);
  ``invoice`` says what happens to the row that found out, and the account stops claiming.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any, Literal

from worker.values import immutable


class Reason(StrEnum):
    """Stable dead-letter reason codes (docs/operations.md lists them); used in the table, logs
    and metric labels."""

    CREDITS_EXPIRED = "credits_expired"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    INVALID_PAYLOAD = "invalid_payload"
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    EXHAUSTED = "exhausted"
    AMBIGUOUS = "ambiguous"


class PauseReason(StrEnum):
    """Why an account stopped claiming; shown by `status` and `accounts list`."""

    CREDITS_EXPIRED = "credits_expired"
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    MISCONFIGURED = "misconfigured"
    OPERATOR = "operator"


class Fate(Enum):
    """What became of one attempt's row, once written: one name, from which both the log event
    and the ``invoice_sync_invoices`` outcome label are derived (docs/operations.md lists both).
    """

    SYNCED = ("invoice.synced", "synced")
    RETRY_SCHEDULED = ("invoice.retry_scheduled", "retried")
    RATE_LIMITED = ("invoice.rate_limited", "rate_limited")
    DEAD_LETTERED = ("invoice.dead_lettered", "dead_lettered")
    # Rows given back without a verdict on the invoice: another row found the pause, the
    # lease ran out before a call slot, shutdown, or a failed probe.
    RELEASED = ("invoice.released", "released")
    PROBE_FAILED = ("invoice.probe_failed", "released")

    def __init__(self, event: str, label: str) -> None:
        self.event = event
        """The log event the attempt is reported under."""
        self.label = label
        """The ``outcome`` label of the ``invoice_sync_invoices`` counter."""


@immutable
class Synced:
    provider_invoice_id: str
    invoice_number: str | None = None
    link: str | None = None
    pdf_url: str | None = None
    response: Any = None
    recovered: bool = False
    quota_wait: float | None = None
    """The answer said the account's request quota is spent: hold it this long (no 429 yet)."""


@immutable
class Retry:
    error: str
    after: float | None = None
    outcome_unknown: bool = False
    http_status: int | None = None
    response: Any = None


@immutable
class RateLimited:
    error: str
    after: float | None = None
    http_status: int | None = 429
    response: Any = None


@immutable
class DeadLetter:
    reason: Reason
    error: str
    http_status: int | None = None
    response: Any = None


@immutable
class PauseAccount:
    reason: PauseReason
    invoice: Retry | DeadLetter


Outcome = Synced | Retry | RateLimited | DeadLetter | PauseAccount


Health = Literal["up", "down"]
"""What one call says about the provider: it answered ("up": success or a refusal of the data),
or it failed as a service ("down": 5xx, timeout, reset). Feeds the account's breaker."""


def health_of(outcome: Outcome) -> Health | None:
    """``None`` for outcomes that say nothing about the provider's health (a 429, a pause)."""
    if isinstance(outcome, Synced | DeadLetter):
        return "up"
    if isinstance(outcome, Retry):
        return "down"
    return None
