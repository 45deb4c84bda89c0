"""Operator actions taken in the console, each with its audit entry in its own transaction.

The entry and the action commit together or not at all (``audit_append``): a pause that rolled
back leaves no entry, and no replay happens without one. A bulk action selects its rows with
``FOR UPDATE`` in the same transaction, so it acts on the rows it counted, up to a cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from worker.store import database
from worker.store.audit import AuditEntry, audit_append
from worker.store.console import DeadLetterSelection
from worker.store.database import Pool
from worker.store.dead_letters import ReplayResult
from worker.store.queries import queries


class OperatorActions:
    """Pause, resume, replay and purge, as ``actor`` (the console login), audited."""

    def __init__(self, pool: Pool, *, actor: str) -> None:
        self._pool = pool
        self._actor = actor
        self._q = queries()

    def _entry(self, action: str, target: dict[str, Any], rows: int, reason: str) -> AuditEntry:
        return AuditEntry(actor=self._actor, action=action, target=target, rows=rows, reason=reason)

    async def account_pause(self, account: str, *, reason: str) -> None:
        """An operator's pause (no probes; only a resume ends it)."""
        async with database.transaction(self._pool) as conn:
            await conn.execute(self._q["account_pause"], account, f"paused by {self._actor}")
            await audit_append(conn, self._entry("pause", {"account": account}, 1, reason))

    async def account_resume(self, account: str, *, reason: str) -> bool:
        """Resume now; False (and still audited, with 0 rows) when it was not paused."""
        async with database.transaction(self._pool) as conn:
            row = await conn.fetchrow(self._q["account_resume"], account)
            rows = 0 if row is None else 1
            await audit_append(conn, self._entry("resume", {"account": account}, rows, reason))
        return row is not None

    async def dead_letter_replay(
        self, ids: Sequence[int], *, reason: str, payload: str | None = None
    ) -> list[ReplayResult]:
        """Replay the dead letters ``ids`` (``payload``, validated JSON text, replaces the
        stored one; one id only)."""
        if payload is not None and len(ids) != 1:
            raise ValueError("a corrected payload replays exactly one dead letter")
        target: dict[str, Any] = {"ids": list(ids), "corrected_payload": payload is not None}
        async with database.transaction(self._pool) as conn:
            return await self._replay(conn, list(ids), payload, target, reason)

    async def dead_letter_replay_selection(
        self, selection: DeadLetterSelection, *, reason: str, cap: int
    ) -> list[ReplayResult]:
        """Replay the dead letters the filter selects, oldest first, at most ``cap``."""
        async with database.transaction(self._pool) as conn:
            ids = await self._select(conn, selection, cap)
            target = {"filter": asdict(selection), "ids": ids}
            return await self._replay(conn, ids, None, target, reason)

    async def dead_letter_purge(self, ids: Sequence[int], *, reason: str) -> int:
        """Delete the dead letters ``ids``; how many were deleted."""
        async with database.transaction(self._pool) as conn:
            deleted: int = await conn.fetchval(self._q["console_dead_letter_delete"], list(ids))
            await audit_append(conn, self._entry("purge", {"ids": list(ids)}, deleted, reason))
        return deleted

    async def dead_letter_purge_selection(
        self, selection: DeadLetterSelection, *, reason: str, cap: int
    ) -> int:
        """Delete the dead letters the filter selects, oldest first, at most ``cap``."""
        async with database.transaction(self._pool) as conn:
            ids = await self._select(conn, selection, cap)
            deleted: int = await conn.fetchval(self._q["console_dead_letter_delete"], ids)
            target = {"filter": asdict(selection), "ids": ids}
            await audit_append(conn, self._entry("purge", target, deleted, reason))
        return deleted

    async def _select(self, conn: Any, selection: DeadLetterSelection, cap: int) -> list[int]:
        rows = await conn.fetch(self._q["console_dead_letter_select"], *selection.arguments(), cap)
        return [row["id"] for row in rows]

    async def _replay(
        self,
        conn: Any,
        ids: list[int],
        payload: str | None,
        target: dict[str, Any],
        reason: str,
    ) -> list[ReplayResult]:
        rows = await conn.fetch(self._q["dead_letter_replay"], ids, payload)
        results = [ReplayResult.from_row(row) for row in rows]
        replayed = sum(1 for r in results if r.replayed_to is not None)
        await audit_append(conn, self._entry("replay", target, replayed, reason))
        return results
