"""The dead-letter store: list, show, replay and purge rows of ``invoice_sync.dead_letter``.

One method per named query in ``sql/queries.sql``, each named after its query. A replay moves
rows back to the outbox as new pending rows and records ``replayed_at`` / ``replayed_to`` on
the dead letter, so the history of what was replayed, when and as which row stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

import asyncpg

from worker.store import database
from worker.store.audit import AuditEntry, audit_append
from worker.store.queries import queries

# Ids per replay transaction: a batch commits or rolls back whole, and a long replay of many
# rows does not hold thousands of row locks at once.
REPLAY_BATCH = 500

# Why a replay was refused, as the operator reads it.
REFUSALS = {
    "already_replayed": "already replayed",
    "synced": "key already synced (it is never sent twice)",
    "in_outbox": "key already in the outbox",
    "cancelled": "key cancelled (it is never sent)",
    "not_found": "no such dead letter",
    "too_large": "payload over the 256 KiB limit (replay it with a shorter --payload)",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterSummary:
    """A dead letter as ``dlq list`` shows it (no payload or provider response)."""

    id: int
    account: str
    idempotency_key: str
    reason: str
    error: str
    http_status: int | None
    attempts: int
    first_attempt_at: datetime | None
    dead_at: datetime
    replayed_at: datetime | None
    replayed_to: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeadLetterSummary:
        return cls(**{field.name: row[field.name] for field in fields(cls)})


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetter(DeadLetterSummary):
    """Everything stored about one dead letter: the summary plus ``payload`` and ``response``,
    both decoded JSON."""

    payload: Any
    response: Any

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeadLetter:
        values = {field.name: row[field.name] for field in fields(cls)}
        for name in ("payload", "response"):
            values[name] = None if row[name] is None else json.loads(row[name])
        return cls(**values)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayResult:
    """One dead letter's replay: ``replayed_to`` the new outbox id, or ``refused`` a key of
    ``REFUSALS``. ``account`` and ``idempotency_key`` are empty for an id not found."""

    id: int
    account: str
    idempotency_key: str
    replayed_to: int | None
    refused: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReplayResult:
        return cls(**{field: row[field] for field in cls.__slots__})


@dataclass(frozen=True, kw_only=True, slots=True)
class PurgeCount:
    """How many dead letters of one account and reason were (or would be) purged."""

    account: str
    reason: str
    count: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PurgeCount:
        return cls(account=row["account"], reason=row["reason"], count=row["count"])


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterFilter:
    """Which dead letters a list or a replay selects; ``None`` means any."""

    reason: str | None = None
    account: str | None = None
    since: datetime | None = None
    include_replayed: bool = False
    limit: int | None = None


class DeadLetterStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def dead_letter_list(self, selection: DeadLetterFilter) -> list[DeadLetterSummary]:
        """Dead letters matching ``selection``, newest first."""
        rows = await database.run(
            lambda: self._pool.fetch(
                self._q["dead_letter_list"],
                selection.reason,
                selection.account,
                selection.since,
                selection.include_replayed,
                selection.limit,
            )
        )
        return [DeadLetterSummary.from_row(row) for row in rows]

    async def dead_letter_show(self, dead_letter_id: int) -> DeadLetter | None:
        row = await database.run(
            lambda: self._pool.fetchrow(self._q["dead_letter_show"], dead_letter_id)
        )
        return None if row is None else DeadLetter.from_row(row)

    async def dead_letter_replay(
        self,
        ids: Sequence[int],
        *,
        payload: str | None = None,
        dry_run: bool = False,
        audit: AuditEntry | None = None,
    ) -> list[ReplayResult]:
        """Replay the dead letters ``ids``, one transaction per batch; one result per id.

        ``payload`` (JSON text, already validated) replaces the stored one; it is only accepted
        for a single id. ``dry_run`` runs each batch and rolls it back, so what it reports is
        exactly what a replay would have done at that moment. ``audit`` (not for a dry run)
        is appended in each batch's transaction, its target with the batch's ``ids`` added,
        and the rows replayed.
        """
        if payload is not None and len(ids) != 1:
            raise ValueError("a corrected payload replays exactly one dead letter")
        unique = list(dict.fromkeys(ids))
        results: dict[int, ReplayResult] = {}
        for start in range(0, len(unique), REPLAY_BATCH):
            batch = unique[start : start + REPLAY_BATCH]
            entry = (
                None
                if audit is None or dry_run
                else replace(audit, target={**audit.target, "ids": batch})
            )
            for row in await self._replay_batch(batch, payload, dry_run=dry_run, audit=entry):
                results[row["id"]] = ReplayResult.from_row(row)
        return [results.get(i) or _not_found(i) for i in unique]

    async def _replay_batch(
        self, ids: list[int], payload: str | None, *, dry_run: bool, audit: AuditEntry | None
    ) -> list[asyncpg.Record]:
        async def replay() -> list[asyncpg.Record]:
            async with self._pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    rows: list[asyncpg.Record] = await conn.fetch(
                        self._q["dead_letter_replay"], ids, payload
                    )
                    if audit is not None:
                        replayed = sum(1 for row in rows if row["replayed_to"] is not None)
                        await audit_append(conn, replace(audit, rows=replayed))
                except BaseException:
                    await transaction.rollback()
                    raise
                await (transaction.rollback() if dry_run else transaction.commit())
                return rows

        return await database.run(replay)

    async def dead_letter_purge(
        self,
        older_than: float,
        *,
        reason: str | None = None,
        account: str | None = None,
        dry_run: bool = False,
        audit: AuditEntry | None = None,
    ) -> list[PurgeCount]:
        """Delete dead letters older than ``older_than`` seconds (counted only with
        ``dry_run``); the counts by account and reason. ``audit`` (not for a dry run) is
        appended in the purge's transaction with the rows deleted."""
        async with database.transaction(self._pool) as conn:
            rows = await conn.fetch(
                self._q["dead_letter_purge"], older_than, reason, account, dry_run
            )
            if audit is not None and not dry_run:
                deleted = rows[0]["deleted"] if rows else 0
                await audit_append(conn, replace(audit, rows=deleted))
        return [PurgeCount.from_row(row) for row in rows]


def _not_found(dead_letter_id: int) -> ReplayResult:
    return ReplayResult(
        id=dead_letter_id, account="", idempotency_key="", replayed_to=None, refused="not_found"
    )
