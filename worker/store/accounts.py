"""Deployment-wide account state: pauses and throttles every replica honours.

A pause lives in ``invoice_sync.account_state``, so one replica finding expired credits stops
claims for that account in all of them; the claim itself skips paused and throttled accounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from worker.store import database
from worker.store.audit import AuditEntry, audit_append
from worker.store.queries import queries


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountState:
    account: str
    paused: bool
    pause_reason: str | None
    pause_error: str | None
    paused_at: datetime | None
    probe_at: datetime | None
    throttled_until: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AccountState:
        return cls(**{field: row[field] for field in cls.__slots__})


class AccountStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def account_pause(
        self, account: str, note: str, *, actor: str | None = None, reason: str | None = None
    ) -> None:
        """An operator's pause: no probes, only ``account_resume`` ends it. With ``actor``, the
        audit log records it (and ``reason``) in the same transaction."""
        async with database.transaction(self._pool) as conn:
            await conn.execute(self._q["account_pause"], account, note)
            if actor is not None:
                entry = AuditEntry(
                    actor=actor, action="pause", target={"account": account}, rows=1, reason=reason
                )
                await audit_append(conn, entry)

    async def account_resume(
        self, account: str, *, actor: str | None = None, reason: str | None = None
    ) -> bool:
        """Resume now; False if the account had no stored state (it was not paused). With
        ``actor``, audited in the same transaction (``rows`` 0 when nothing was paused)."""
        async with database.transaction(self._pool) as conn:
            row = await conn.fetchrow(self._q["account_resume"], account)
            if actor is not None:
                entry = AuditEntry(
                    actor=actor,
                    action="resume",
                    target={"account": account},
                    rows=0 if row is None else 1,
                    reason=reason,
                )
                await audit_append(conn, entry)
        return row is not None

    async def account_state_list(self) -> list[AccountState]:
        rows = await database.run(lambda: self._pool.fetch(self._q["account_state_list"]))
        return [AccountState.from_row(row) for row in rows]
