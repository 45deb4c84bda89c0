"""The console's own dead-letter actions, each with its audit entry in its own transaction.

Pause, resume, a replay by id and cancel go through the same store methods as the CLI
(``AccountStore``, ``DeadLetterStore``, ``Results``, with the console login as ``actor``).
What is left here has no CLI twin: a purge by id, and the bulk actions. A bulk action is given
the ids its preview showed (at most the console's cap; the CLI's replay of a filter batches by
500 and its purge goes by age) and locks them with ``FOR UPDATE`` in its own transaction: rows
that joined the filter since are left alone, and if some of the confirmed ones went meanwhile
it does nothing (``StaleSelectionError``), so the count the operator confirmed is the count
acted on.
The entry and the action commit together or not at all (``audit_append``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from worker.errors import StaleSelectionError
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
        self, selection: DeadLetterSelection, ids: Sequence[int], *, reason: str
    ) -> list[ReplayResult]:
        """Replay the dead letters ``ids`` the operator confirmed for ``selection``."""
        async with database.transaction(self._pool) as conn:
            locked = await self._select(conn, selection, ids)
            target = {"filter": asdict(selection), "ids": locked}
            return await self._replay(conn, locked, target, reason)

    async def dead_letter_purge(self, ids: Sequence[int], *, reason: str) -> int:
        """Delete the dead letters ``ids``; how many were deleted."""
        async with database.transaction(self._pool) as conn:
            deleted: int = await conn.fetchval(self._q["console_dead_letter_delete"], list(ids))
            await audit_append(conn, self._entry("purge", {"ids": list(ids)}, deleted, reason))
        return deleted

    async def dead_letter_purge_selection(
        self, selection: DeadLetterSelection, ids: Sequence[int], *, reason: str
    ) -> int:
        """Delete the dead letters ``ids`` the operator confirmed for ``selection``."""
        async with database.transaction(self._pool) as conn:
            locked = await self._select(conn, selection, ids)
            deleted: int = await conn.fetchval(self._q["console_dead_letter_delete"], locked)
            target = {"filter": asdict(selection), "ids": locked}
            await audit_append(conn, self._entry("purge", target, deleted, reason))
        return deleted

    async def _select(
        self, conn: Any, selection: DeadLetterSelection, ids: Sequence[int]
    ) -> list[int]:
        """``ids``, locked, if the filter still selects every one; ``StaleSelectionError`` (the
        transaction rolls back, nothing done) if some went since the preview."""
        confirmed = sorted(set(ids))
        query = self._q["console_dead_letter_select"]
        rows = await conn.fetch(query, *selection.arguments(), confirmed)
        if len(rows) != len(confirmed):
            raise StaleSelectionError(confirmed=len(confirmed), remaining=len(rows))
        return [row["id"] for row in rows]

    async def _replay(
        self, conn: Any, ids: list[int], target: dict[str, Any], reason: str
    ) -> list[ReplayResult]:
        rows = await conn.fetch(self._q["dead_letter_replay"], ids, None)
        results = [ReplayResult.from_row(row) for row in rows]
        replayed = sum(1 for r in results if r.replayed_to is not None)
        await audit_append(conn, self._entry("replay", target, replayed, reason))
        return results
