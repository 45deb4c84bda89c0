"""The audit log: every operator action (pause, resume, replay, purge, cancel, account
changes), who took it, what it was given, how many rows it touched and why.

``audit_append`` takes the connection of the action's own transaction: the entry commits with
the action or not at all. The table is append-only (the worker role may not update or delete
it, ``sql/roles.sql``).
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from worker.store import database
from worker.store.queries import queries

# The column's bound; a longer reason is cut, not refused: the action has already been decided.
REASON_LIMIT = 2000


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One action, as it is written: ``target`` is the ids or the filter the action was given."""

    actor: str
    action: str
    target: Mapping[str, Any]
    rows: int
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRecord(AuditEntry):
    """One action, as it was recorded."""

    id: int
    at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditRecord:
        values = {field.name: row[field.name] for field in fields(cls)}
        values["target"] = json.loads(row["target"])
        return cls(**values)


def cli_actor() -> str:
    """Who runs a CLI command: ``os-user@host`` (the audit's actor for operator commands)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:200]


async def audit_append(conn: asyncpg.Connection, entry: AuditEntry) -> int:
    """Record ``entry`` on ``conn``, inside the caller's transaction; its id."""
    reason = entry.reason[:REASON_LIMIT] if entry.reason else None
    target = json.dumps(dict(entry.target), default=str)
    audit_id: int = await conn.fetchval(
        queries()["audit_append"], entry.actor, entry.action, target, entry.rows, reason
    )
    return audit_id


class AuditLog:
    """Reads the audit log, newest first."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def audit_list(self, *, before: int | None = None, limit: int = 50) -> list[AuditRecord]:
        rows = await database.run(lambda: self._pool.fetch(self._q["audit_list"], before, limit))
        return [AuditRecord.from_row(row) for row in rows]
