"""The log events a flush reports: one canonical line per attempt, and account state changes.

Events are written only after the database has the outcome, so a log line never claims a state
the table does not show.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from structlog.typing import FilteringBoundLogger

from worker.claims import AccountAction
from worker.engine.flusher import Finished
from worker.logs import HELD_LINES
from worker.store.outbox import RecordSummary

log = structlog.get_logger("worker.engine.events")


def report(
    batch: Sequence[Finished],
    summary: RecordSummary,
    actions: Sequence[AccountAction],
    resumed: Sequence[str],
) -> None:
    # One logger bound for the whole batch: the module's lazy proxy binds a new one for every
    # event (so that it follows a later ``configure_logging``), a fifth of each line's cost.
    # The lines go out in one write at the end.
    bound = log.bind()
    with HELD_LINES.together():
        for item in batch:
            _report_attempt(bound, item, applied=item.row.id in summary.applied)
    for action in actions:
        if action.pause_reason is not None:
            log.warning(
                "account.paused",
                account=action.account,
                reason=action.pause_reason,
                error=action.pause_error,
                probe_in=action.probe_in,
            )
        elif action.throttle is not None:
            log.info("account.throttled", account=action.account, seconds=action.throttle)
    for account in resumed:
        log.info("account.resumed", account=account, by="probe")


def _report_attempt(logger: FilteringBoundLogger, item: Finished, *, applied: bool) -> None:
    resolution = item.decision.resolution
    fields = {
        "account": item.row.account,
        "outbox_id": item.row.id,
        "idempotency_key": item.row.idempotency_key,
        "attempt": item.row.attempt,
        "provider": item.provider,
        "duration_ms": round(item.duration * 1000, 1),
        "http_status": resolution.http_status,
    }
    if not applied:
        # Another worker re-claimed the row (our lease ran out): its attempt decides.
        logger.warning("invoice.outcome_fenced", **fields, outcome=resolution.kind)
        return
    if resolution.kind == "synced":
        logger.info(
            item.decision.fate.event,
            **fields,
            provider_invoice_id=resolution.provider_invoice_id,
            invoice_number=resolution.invoice_number,
            recovered=resolution.recovered,
        )
    elif resolution.kind == "dead":
        logger.warning(
            item.decision.fate.event, **fields, reason=resolution.reason, error=resolution.error
        )
    else:
        logger.info(
            item.decision.fate.event,
            **fields,
            delay=round(resolution.delay, 3),
            outcome_unknown=resolution.unknown,
            error=resolution.error,
        )
