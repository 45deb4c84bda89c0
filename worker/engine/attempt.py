"""One attempt at one claimed row: validate, apply the unknown-outcome policy, wait for the rate
limit, call the provider, decide. Returns a ``Decision``; never writes to the database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from worker.claims import Claimed
from worker.config import WorkerSettings
from worker.engine.runtimes import AccountRuntime
from worker.engine.slots import Slots
from worker.invoice import Invoice, describe_validation_error, parse_invoice
from worker.outcome import (
    DeadLetter,
    Fate,
    Outcome,
    PauseAccount,
    RateLimited,
    Reason,
    Retry,
    Synced,
)
from worker.policy import Decision, dead_letter, decide, release
from worker.providers.base import Attempt

log = structlog.get_logger(__name__)

OUTCOME_NAMES: dict[type, str] = {
    Synced: "synced",
    Retry: "retry",
    RateLimited: "rate_limited",
    DeadLetter: "dead_letter",
    PauseAccount: "pause",
}


class Attempter:
    def __init__(
        self,
        settings: WorkerSettings,
        rand: Callable[[], float],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe_call: Callable[[str, str, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        calls: Slots | None = None,
    ) -> None:
        self._settings = settings
        # The process's calls at once, all accounts together (``max_in_flight``).
        self._calls = calls or Slots(settings.max_in_flight)
        self._clock = clock
        self._observe_call = observe_call
        self._rand = rand
        self._now = now

    async def attempt(
        self,
        row: Claimed,
        runtime: AccountRuntime,
        on_send: Callable[[], None],
        *,
        lease_ends: float | None = None,
    ) -> Decision:
        """Run one attempt; ``on_send`` is called just before the request may leave.
        ``lease_ends`` (by ``clock``) is when the row's lease may end: no create is sent
        later than ``send_by`` before it (see ``Attempt.send_by``)."""
        try:
            invoice = parse_invoice(row.payload)
        except ValidationError as exc:
            return dead_letter(row, Reason.INVALID_PAYLOAD, describe_validation_error(exc))
        parked = self._park_if_unsafe(row, runtime, invoice)
        if parked is not None:
            return parked
        # The account's slot (and rate spacing) first: a row waiting for its own account
        # must not hold one of the process's slots that another account could use.
        async with runtime.gate.call_slot(), self._calls:
            send_by = None
            if lease_ends is not None:
                left = lease_ends - self._send_margin(runtime) - self._clock()
                if left <= 0:
                    # Waited too long for a slot (rows are leased ahead): give it back unsent.
                    error = "its lease ran out while it waited for a call slot; not sent"
                    resolution = release(row, error=error)
                    return Decision(resolution=resolution, fate=Fate.RELEASED)
                send_by = time.monotonic() + left
            on_send()
            started = time.monotonic()
            outcome = await self._call(row, runtime, invoice, send_by)
        if self._observe_call is not None:
            self._observe_call(
                row.account, OUTCOME_NAMES[type(outcome)], time.monotonic() - started
            )
        return decide(
            outcome,
            row,
            provider=runtime.provider_name,
            settings=self._settings,
            rand=self._rand,
            now=self._now(),
        )

    def _park_if_unsafe(
        self, row: Claimed, runtime: AccountRuntime, invoice: Invoice
    ) -> Decision | None:
        if not row.prior_unknown or runtime.provider.retry_is_safe(invoice):
            return None
        if self._settings.unknown_outcome == "retry":
            log.warning("invoice.unsafe_retry", account=row.account, outbox_id=row.id)
            return None
        error = (
            f"an earlier attempt's outcome is unknown and {runtime.provider_name} offers no safe "
            "retry for this invoice (it has no number to refuse a repeat and no lookup): check "
            "the provider for it, then replay or purge this row"
        )
        return dead_letter(row, Reason.AMBIGUOUS, error)

    def _send_margin(self, runtime: AccountRuntime) -> float:
        """How long before its lease ends an attempt stops sending: a call may run for the
        request timeout once sent, and must be over before another worker can take the row
        (at most half the lease, so a short lease still leaves time to send)."""
        return min(runtime.request_timeout, self._settings.lease / 2)

    async def _call(
        self, row: Claimed, runtime: AccountRuntime, invoice: Invoice, send_by: float | None
    ) -> Outcome:
        attempt = Attempt(
            outbox_id=row.id,
            account=row.account,
            idempotency_key=row.idempotency_key,
            invoice=invoice,
            number=row.attempt,
            prior_unknown=row.prior_unknown,
            since=row.first_attempt_at,
            send_by=send_by,
            rate=runtime.gate.rate,
        )
        try:
            return await runtime.provider.create_invoice(attempt)
        except Exception as exc:
            log.exception("provider.adapter_error", account=row.account, outbox_id=row.id)
            return Retry(error=f"adapter error: {type(exc).__name__}", outcome_unknown=True)
