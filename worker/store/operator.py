"""The console's own dead-letter actions, each with its audit entry in its own transaction.

Pause, resume, a replay by id and cancel go through the same store methods as the CLI
(``AccountStore``, ``DeadLetterStore``, ``Results``, with the console login as ``actor``).
What is left here has no CLI twin: a purge by id, and the bulk actions, which select their rows
with ``FOR UPDATE`` in the action's transaction so they act on the rows the operator counted,
up to a cap (the CLI's replay of a filter batches by 500 and its purge goes by age).
The entry and the action commit together or not at all (``audit_append``).
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
    """Bulk replay, and purge by id or filter, as ``actor`` (the console login), audited."""

    def __init__(self, pool: Pool, *, actor: str) -> None:
        self._pool = pool
        self._actor = actor
        self._q = queries()

    def _entry(self, action: str, target: dict[str, Any], rows: int, reason: str) -> AuditEntry:
        return AuditEntry(actor=self._actor, action=action, target=target, rows=rows, reason=reason)

    async def dead_letter_replay_selection(
        self, selection: DeadLetterSelection, *, reason: str, cap: int
    ) -> list[ReplayResult]:
        """Replay the dead letters the filter selects, oldest first, at most ``cap``."""
        async with database.transaction(self._pool) as conn:
            ids = await self._select(conn, selection, cap)
            target = {"filter": asdict(selection), "ids": ids}
            return await self._replay(conn, ids, target, reason)

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
        self, conn: Any, ids: list[int], target: dict[str, Any], reason: str
    ) -> list[ReplayResult]:
        rows = await conn.fetch(self._q["dead_letter_replay"], ids, None)
        results = [ReplayResult.from_row(row) for row in rows]
        replayed = sum(1 for r in results if r.replayed_to is not None)
        await audit_append(conn, self._entry("replay", target, replayed, reason))
        return results
