"""What producers get back, read and done through the database's own contracts: one key's
outcome (``invoice_sync.result``) and withdrawing a row not yet sent (``invoice_sync.cancel``).

The CLI's ``cancel`` goes through the same function a producer calls, so the operator's cancel
is exactly as race-safe with the claims; it adds an audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from worker.store import database
from worker.store.audit import AuditEntry, audit_append
from worker.store.database import Pool
from worker.store.queries import queries

STATES = ("pending", "in_flight", "synced", "dead", "cancelled", "unknown")
"""Every state ``result()`` answers; ``cancel()`` answers all but ``pending``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoiceResult:
    """One key's outcome, as ``invoice_sync.result()`` returns it."""

    state: str
    provider_invoice_id: str | None
    invoice_number: str | None
    link: str | None
    pdf_url: str | None
    reason: str | None
    error: str | None
    attempts: int | None
    updated_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> InvoiceResult:
        return cls(**{field.name: row[field.name] for field in fields(cls)})


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelOutcome:
    """``state`` as cancel() answered; ``withdrawn`` when this call is the one that cancelled."""

    state: str
    withdrawn: bool


class Results:
    """Reads and cancels single invoices by (account, idempotency key)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def invoice_result(self, account: str, key: str) -> InvoiceResult:
        row = await database.run(
            lambda: self._pool.fetchrow(self._q["invoice_result"], account, key)
        )
        return InvoiceResult.from_row(row)

    async def invoice_cancel(
        self, account: str, key: str, *, reason: str | None, actor: str
    ) -> CancelOutcome:
        """Cancel through ``invoice_sync.cancel()`` and audit it (``cancel``, one row when this
        call withdrew it), in one transaction."""
        async with database.transaction(self._pool) as conn:
            state: str = await conn.fetchval(self._q["invoice_cancel"], account, key, reason)
            withdrawn: bool = await conn.fetchval(self._q["cancelled_in_transaction"], account, key)
            entry = AuditEntry(
                actor=actor,
                action="cancel",
                target={"account": account, "idempotency_key": key, "state": state},
                rows=1 if withdrawn else 0,
                reason=reason,
            )
            await audit_append(conn, entry)
        return CancelOutcome(state=state, withdrawn=withdrawn)
