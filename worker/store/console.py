"""What the operator console reads: one method per ``console_*`` query in ``sql/queries.sql``.

Every read is bounded and index-backed (migration 009): lists are keyset-paginated, never an
OFFSET; a backlog is counted up to a cap, not row by row. Rows come back as frozen values, so
the console's templates never see a database record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from worker.store import database
from worker.store.database import Pool, Row
from worker.store.queries import queries

T = TypeVar("T")


def _from_row(cls: type[T], row: Mapping[str, Any]) -> T:
    """A frozen value of ``cls`` from the row's columns of the same names."""
    return cls(**{field.name: row[field.name] for field in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxCounts:
    """One account's unfinished rows: ``pending`` counted up to the cap the caller gave."""

    account: str
    pending: int
    running: int
    first_available_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class MinuteCount:
    """Rows that reached ``kind`` (``synced`` or ``dead``) in one minute, for one account."""

    kind: str
    account: str
    minute: datetime
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RateBudget:
    account: str
    tokens: float
    rate: float  # tokens per second
    burst: float


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoiceRow:
    """One invoice as the invoice list shows it; ``state`` is ``pending``, ``running``,
    ``synced``, ``dead`` or ``cancelled``; ``note`` the last error, the dead letter's reason
    or the reason it was cancelled for."""

    account: str
    idempotency_key: str
    outbox_id: int
    state: str
    invoice_number: str | None
    provider_invoice_id: str | None
    attempts: int
    at: datetime
    note: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterRow:
    id: int
    account: str
    idempotency_key: str
    reason: str
    error: str
    http_status: int | None
    attempts: int
    dead_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterSelection:
    """Which dead letters (not replayed) a page or a bulk action covers; ``None`` is any.
    ``older_than`` in seconds."""

    reason: str | None = None
    account: str | None = None
    older_than: float | None = None

    def arguments(self) -> tuple[str | None, str | None, float | None]:
        return self.reason, self.account, self.older_than


class ConsoleStore:
    """The console's reads, one method per named query."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def _fetch(self, name: str, *args: object) -> list[Row]:
        rows: list[Row] = await database.run(lambda: self._pool.fetch(self._q[name], *args))
        return rows

    async def console_accounts(self) -> list[str]:
        """Every account with rows or state."""
        return [row["account"] for row in await self._fetch("console_accounts")]

    async def console_outbox_counts(self, accounts: Sequence[str], cap: int) -> list[OutboxCounts]:
        rows = await self._fetch("console_outbox_counts", list(accounts), cap)
        return [_from_row(OutboxCounts, row) for row in rows]

    async def console_outbox_estimate(self) -> int:
        """The planner's estimate of the outbox's rows (cheap; as fresh as the last ANALYZE)."""
        [row] = await self._fetch("console_outbox_estimate")
        estimate: int = row["estimate"]
        return estimate

    async def console_throughput(self, minutes: int) -> list[MinuteCount]:
        rows = await self._fetch("console_throughput", minutes)
        return [_from_row(MinuteCount, row) for row in rows]

    async def console_rate_budget(self) -> list[RateBudget]:
        return [_from_row(RateBudget, row) for row in await self._fetch("console_rate_budget")]

    async def console_invoice_page(
        self, *, account: str | None, after: tuple[str, str], limit: int
    ) -> list[InvoiceRow]:
        """Invoices in (account, key) order after the cursor ``after``, one account or all."""
        if account is None:
            rows = await self._fetch("console_invoice_page", after[0], after[1], limit)
        else:
            key = after[1] if after[0] == account else ""
            rows = await self._fetch("console_invoice_page_account", account, key, limit)
        return [_from_row(InvoiceRow, row) for row in rows]

    async def console_invoice_find(
        self, text: str, *, accounts: Sequence[str], limit: int
    ) -> list[InvoiceRow]:
        """Invoices whose key, invoice number or provider id is ``text``, in ``accounts``."""
        rows = await self._fetch("console_invoice_find", text, list(accounts), limit)
        return [_from_row(InvoiceRow, row) for row in rows]

    async def console_dead_letter_page(
        self,
        selection: DeadLetterSelection,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[DeadLetterRow]:
        """Dead letters not replayed, newest first, after the cursor (dead_at, id)."""
        dead_at, dead_id = after if after is not None else (None, None)
        rows = await self._fetch(
            "console_dead_letter_page", *selection.arguments(), dead_at, dead_id, limit
        )
        return [_from_row(DeadLetterRow, row) for row in rows]

    async def console_dead_letter_preview(
        self, selection: DeadLetterSelection, cap: int
    ) -> list[int]:
        """The ids a bulk action on ``selection`` would touch, oldest first, at most ``cap``."""
        rows = await self._fetch("console_dead_letter_preview", *selection.arguments(), cap)
        return [row["id"] for row in rows]
