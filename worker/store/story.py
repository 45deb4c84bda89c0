"""One invoice's whole story, by its business key: where it is now (pending, in flight, synced,
dead letter), what the provider calls it, every outbox row it has had (a dead letter replayed
becomes a new outbox row of the same key) and every attempt, oldest first. A key withdrawn by
``invoice_sync.cancel()`` is ``cancelled``, with the reason given and the login that called it.

Read by ``invoice-sync show`` and the console's invoice page. Two named queries on one
connection (``story_rows``, ``story_attempts``), both by ``(account, idempotency_key)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from worker.store import database
from worker.store.queries import queries

# Where an invoice is now. The same words as the producers' ``invoice_sync.result``; a state
# is a plain string so that later ones (a producer's cancel) need no change here.
PENDING = "pending"
IN_FLIGHT = "in_flight"
SYNCED = "synced"
DEAD = "dead"
CANCELLED = "cancelled"
"""Withdrawn before it was sent (``invoice_sync.cancelled``); never sent afterwards."""
PURGED = "purged"
"""Only attempts are left: the dead letters were purged (attempts outlive them)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptRecord:
    """One provider attempt as ``invoice_sync.attempt`` keeps it.

    ``outcome``: synced, recovered, retry, rate_limited, dead_letter, paused, released, rescued
    (or cancelled). ``calls``: the attempt's other provider requests (login, lookup, tag scan),
    each ``{"kind", "http_status", "duration_ms"}``; ``response`` the bounded, scrubbed answer.
    """

    outbox_id: int
    claim: int
    attempt: int
    worker: str
    provider: str | None
    started_at: datetime
    duration_ms: int
    http_status: int | None
    outcome: str
    reason: str | None
    error: str | None
    response: Any
    outcome_unknown: bool
    calls: list[dict[str, Any]]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AttemptRecord:
        values = {field.name: row[field.name] for field in fields(cls)}
        values["response"] = None if row["response"] is None else json.loads(row["response"])
        values["calls"] = [] if row["calls"] is None else json.loads(row["calls"])
        return cls(**values)


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoiceStory:
    """Everything known about one ``(account, idempotency_key)``.

    ``outbox_id`` is the newest row of the key (the one ``state`` describes); ``history`` every
    outbox id the key has had, oldest first. The provider fields are set once it is synced;
    ``reason`` and ``error`` are the dead letter's, or a pending row's last error; for a
    cancelled key ``reason`` is the one cancel() was given and ``cancelled_by`` the database
    login that called it (an operator's own name is in the audit log). ``since``: when it
    reached ``state`` (the last change, for a row still in the outbox; the cancel's time).
    ``next_attempt_at``: when a pending row is due.
    """

    account: str
    idempotency_key: str
    state: str
    outbox_id: int
    history: list[int]
    since: datetime
    attempts_made: int
    provider: str | None = None
    provider_invoice_id: str | None = None
    invoice_number: str | None = None
    link: str | None = None
    pdf_url: str | None = None
    recovered: bool = False
    reason: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    cancelled_by: str | None = None
    attempts: list[AttemptRecord]


async def invoice_story(pool: asyncpg.Pool, account: str, key: str) -> InvoiceStory | None:
    """The story of ``key`` in ``account``; ``None`` when no table has heard of it (never
    enqueued, or purged and its attempts pruned)."""
    q = queries()

    async def load() -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot: a row moving from the outbox to synced between the two reads
            # would otherwise show up in neither place, or its last attempt would be missing.
            rows = await conn.fetch(q["story_rows"], account, key)
            attempts = await conn.fetch(q["story_attempts"], account, key)
            return rows, attempts

    rows, attempt_rows = await database.run(load)
    attempts = [AttemptRecord.from_row(row) for row in attempt_rows]
    if not rows and not attempts:
        return None
    return _story(account, key, rows, attempts)


def _story(
    account: str, key: str, rows: Sequence[Mapping[str, Any]], attempts: list[AttemptRecord]
) -> InvoiceStory:
    history = sorted({row["outbox_id"] for row in rows} | {a.outbox_id for a in attempts})
    now = _where_now(rows)
    if now is None:  # only attempts are left: its rows were purged
        last = attempts[-1]
        return InvoiceStory(
            account=account,
            idempotency_key=key,
            state=PURGED,
            outbox_id=last.outbox_id,
            history=history,
            since=last.started_at,
            attempts_made=last.attempt,
            attempts=attempts,
        )
    return InvoiceStory(
        account=account,
        idempotency_key=key,
        state=_state(now),
        outbox_id=now["outbox_id"],
        history=history,
        since=now["at"],
        attempts_made=now["attempts"],
        provider=now["provider"],
        provider_invoice_id=now["provider_invoice_id"],
        invoice_number=now["invoice_number"],
        link=now["link"],
        pdf_url=now["pdf_url"],
        recovered=bool(now["recovered"]),
        reason=now["reason"],
        error=now["error"],
        next_attempt_at=now["available_at"] if now["place"] == "outbox" else None,
        cancelled_by=now["cancelled_by"],
        attempts=attempts,
    )


def _where_now(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The row that says where the invoice is: synced wins (a key is synced once and never
    sent again), then a row still in the outbox, then a cancelled one (a key is cancelled once
    and never enqueued again), then the newest dead letter (a replay chain's earlier rows)."""
    for place in ("synced", "outbox", "cancelled", "dead_letter"):
        found = [row for row in rows if row["place"] == place]
        if found:
            return found[-1]
    return None


def _state(row: Mapping[str, Any]) -> str:
    if row["place"] == "synced":
        return SYNCED
    if row["place"] == "dead_letter":
        return DEAD
    if row["place"] == "cancelled":
        return CANCELLED
    return IN_FLIGHT if row["state"] == "running" else PENDING
