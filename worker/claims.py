"""The values the engine and the store exchange about claimed rows: a leased row, what happens
to it, and what happens to its account.

They are domain values: the policy decides them, the engine carries them, the store writes them.
Nothing here knows SQL or a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from worker.values import immutable


@immutable
class Claimed:
    """A leased outbox row, as the claim returned it."""

    id: int
    account: str
    idempotency_key: str
    payload: str
    attempt: int
    claim: int
    """This claim's number (``outbox.claims``): what fences its outcome."""
    first_attempt_at: datetime
    created_at: datetime
    prior_unknown: bool
    probe: bool
    traceparent: str | None = None
    """The producer's W3C trace context, when it gave one: the attempt's span continues it."""


@immutable
class Resolution:
    """What happens to one claimed row; ``outbox_record`` applies a batch of them at once.

    ``kind``: ``synced`` and ``dead`` move the row out of the outbox; ``retry`` puts it back to
    pending after ``delay`` seconds. ``spend`` False gives the attempt back (rate limited, or
    released before the call). ``unknown`` is the row's new ``outcome_unknown`` (a retry), or
    the dead letter's (an attempt may have reached the provider).
    """

    id: int
    claim: int
    """The claim this outcome belongs to (``Claimed.claim``); another claim's row ignores it."""
    kind: Literal["synced", "retry", "dead"]
    delay: float = 0.0
    spend: bool = True
    unknown: bool = False
    reason: str | None = None
    error: str | None = None
    http_status: int | None = None
    response: Any = None
    provider: str | None = None
    provider_invoice_id: str | None = None
    invoice_number: str | None = None
    link: str | None = None
    pdf_url: str | None = None
    recovered: bool = False

    def as_record(self) -> dict[str, Any]:
        """The fields as ``outbox_record``'s JSON takes them, every one in order. Not
        ``dataclasses.asdict``: that deep-copies every value (the provider's response too), the
        top cost of a flush; and written out, as a loop of ``getattr`` over the fields took
        twice as long (one per row flushed; a test checks it names every field)."""
        return {
            "id": self.id,
            "claim": self.claim,
            "kind": self.kind,
            "delay": self.delay,
            "spend": self.spend,
            "unknown": self.unknown,
            "reason": self.reason,
            "error": self.error,
            "http_status": self.http_status,
            "response": self.response,
            "provider": self.provider,
            "provider_invoice_id": self.provider_invoice_id,
            "invoice_number": self.invoice_number,
            "link": self.link,
            "pdf_url": self.pdf_url,
            "recovered": self.recovered,
        }


@immutable
class AccountAction:
    """A pause (with the delay before the first probe) or a throttle for one account."""

    account: str
    pause_reason: str | None = None
    pause_error: str | None = None
    probe_in: float | None = None
    throttle: float | None = None


@immutable
class AttemptFacts:
    """How one attempt went, beside its ``Resolution``: what ``outbox_record`` writes to the
    attempt history in the same statement (one row per outcome it applies).

    ``outcome`` is the history's label: synced, recovered (found by a lookup or tag scan),
    retry, rate_limited, dead_letter, paused (this outcome paused the account), released
    (given back unsent). ``create_status`` is the create request's HTTP status when the
    outcome carries none (a success); ``calls`` the attempt's other provider requests
    (``{"kind", "http_status", "duration_ms"}``: never a body or a header); ``reason`` a
    pause's reason, where the row's own outcome has none.
    """

    outcome: str
    provider: str
    started_at: datetime
    duration_ms: int
    create_status: int | None = None
    calls: Sequence[Mapping[str, Any]] = ()
    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The fields as ``outbox_record``'s JSON takes them, beside ``Resolution.as_record``'s
        (``provider`` is the same value as a synced resolution's; ``reason`` is renamed, the
        resolution's own reason wins)."""
        return {
            "outcome": self.outcome,
            "provider": self.provider,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "create_status": self.create_status,
            "calls": self.calls or None,
            "attempt_reason": self.reason,
        }
