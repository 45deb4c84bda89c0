"""The read-only counts: ``invoice-sync status`` (counts by account and state, oldest pending age,
dead letters by reason, synced rate, account pauses, and the rows of accounts no running replica
is configured for), ``status --watch`` and the metrics' gauges; and the
replica's announcement of the accounts it works, which those counts read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from worker.store import database
from worker.store.accounts import AccountStore
from worker.store.database import Pool, Row
from worker.store.outbox import WorkedAccounts
from worker.store.queries import queries


class StatsStore:
    """The counts ``status`` and the metrics read, one method per named query."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def _rows(self, name: str) -> list[Row]:
        rows: list[Row] = await database.run(lambda: self._pool.fetch(self._q[name]))
        return rows

    async def status_outbox(self) -> list[Row]:
        """Outbox rows by account and state: count, scheduled, unknown outcome, oldest age."""
        return await self._rows("status_outbox")

    async def status_synced(self) -> list[Row]:
        """Synced rows by account: count, recovered, synced in the last minute."""
        return await self._rows("status_synced")

    async def status_dead_letter(self) -> list[Row]:
        """Dead letters not replayed, by account and reason."""
        return await self._rows("status_dead_letter")

    async def status_cancelled(self) -> list[Row]:
        """Cancelled rows by account."""
        return await self._rows("status_cancelled")

    async def result_notify_skipped(self) -> int:
        """Result notifications skipped so far because the notification queue was too full."""
        skipped: int = await database.run(
            lambda: self._pool.fetchval(self._q["result_notify_skipped"])
        )
        return skipped

    async def metrics_outbox(self, worked: WorkedAccounts) -> list[Row]:
        """Unfinished rows and the oldest one's age, by account; ``mine``: whether the
        ``worked`` accounts include it (as ``Outbox.outbox_unfinished`` counts)."""
        rows: list[Row] = await database.run(
            lambda: self._pool.fetch(self._q["metrics_outbox"], *worked.query_args())
        )
        return rows

    async def replica_account_live(self) -> set[str]:
        """The accounts some running replica announced and whose announcement still holds."""
        return {row["account"] for row in await self._rows("replica_account_live")}

    async def replica_account_announce(self, accounts: Sequence[str], ttl: float) -> None:
        """Announce that a running replica works ``accounts``, for ``ttl`` seconds."""
        await database.run(
            lambda: self._pool.execute(self._q["replica_account_announce"], list(accounts), ttl)
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Readout:
    """Counts read in one refresh; keys are account names. ``dead`` is by account, then reason."""

    pending: Mapping[str, int] = field(default_factory=dict)
    running: Mapping[str, int] = field(default_factory=dict)
    synced: Mapping[str, int] = field(default_factory=dict)
    dead: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    paused: Mapping[str, str] = field(default_factory=dict)  # account -> pause reason
    pause_errors: Mapping[str, str] = field(default_factory=dict)  # account -> what happened

    @property
    def finished(self) -> int:
        return sum(self.synced.values()) + sum(sum(d.values()) for d in self.dead.values())


class WatchStore:
    """The reads ``status --watch`` makes, one method per named query."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._q = queries()

    async def status_watch_start(self) -> datetime:
        """The database's clock, so finished rows are counted by the same clock that stamped them."""
        started: datetime = await database.run(
            lambda: self._pool.fetchval(self._q["status_watch_start"])
        )
        return started

    async def status_watch_remaining(
        self, conn: asyncpg.Connection
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(pending, running) row counts by account."""
        by_state: dict[str, dict[str, int]] = {"pending": {}, "running": {}}
        for row in await conn.fetch(self._q["status_watch_remaining"]):
            by_state[row["state"]][row["account"]] = row["count"]
        return by_state["pending"], by_state["running"]

    async def status_watch_finished(
        self, conn: asyncpg.Connection, since: datetime
    ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """(synced by account, dead-lettered by account and reason) since ``since``."""
        synced: dict[str, int] = {}
        dead: dict[str, dict[str, int]] = {}
        for row in await conn.fetch(self._q["status_watch_finished"], since):
            if row["kind"] == "synced":
                synced[row["account"]] = row["count"]
            else:
                dead.setdefault(row["account"], {})[row["reason"]] = row["count"]
        return synced, dead

    async def read(self, since: datetime) -> Readout:
        """Everything one refresh shows.

        The two counts share one snapshot (REPEATABLE READ): read apart, a row finishing between
        them would be counted both as unfinished and as finished, and the total would wobble.
        """

        async def counts() -> tuple[
            tuple[dict[str, int], dict[str, int]], tuple[dict[str, int], dict[str, dict[str, int]]]
        ]:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return (
                    await self.status_watch_remaining(conn),
                    await self.status_watch_finished(conn, since),
                )

        (pending, running), (synced, dead) = await database.run(counts)
        states = await AccountStore(self._pool).account_state_list()
        paused = [s for s in states if s.paused]
        return Readout(
            pending=pending,
            running=running,
            synced=synced,
            dead=dead,
            paused={s.account: s.pause_reason or "paused" for s in paused},
            pause_errors={s.account: s.pause_error for s in paused if s.pause_error},
        )


async def gather_status(pool: Pool) -> dict[str, Any]:
    stats = StatsStore(pool)
    outbox = await stats.status_outbox()
    synced = await stats.status_synced()
    dead = await stats.status_dead_letter()
    cancelled = await stats.status_cancelled()
    states = await AccountStore(pool).account_state_list()
    worked = await stats.replica_account_live()
    accounts: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return accounts.setdefault(
            name,
            {
                "pending": 0,
                "running": 0,
                "scheduled": 0,
                "unknown_outcome": 0,
                "oldest_pending_age_s": None,
                "synced": 0,
                "recovered": 0,
                "synced_last_minute": 0,
                "dead_letter": {},
                "cancelled": 0,
                "paused": None,
                "configured": name in worked,
            },
        )

    for row in outbox:
        item = entry(row["account"])
        item[row["state"]] = row["count"]
        item["scheduled"] += row["scheduled"]
        item["unknown_outcome"] += row["unknown_outcome"]
        if row["state"] == "pending":
            item["oldest_pending_age_s"] = round(float(row["oldest_age"]), 1)
    for row in synced:
        item = entry(row["account"])
        item.update(
            synced=row["count"], recovered=row["recovered"], synced_last_minute=row["last_minute"]
        )
    for row in dead:
        entry(row["account"])["dead_letter"][row["reason"]] = row["count"]
    for row in cancelled:
        entry(row["account"])["cancelled"] = row["count"]
    for state in states:
        if state.paused:
            entry(state.account)["paused"] = {
                "reason": state.pause_reason,
                "error": state.pause_error,
                "since": state.paused_at.isoformat() if state.paused_at else None,
                "next_probe": state.probe_at.isoformat() if state.probe_at else None,
            }
    return {
        "accounts": dict(sorted(accounts.items())),
        "unconfigured_pending": _unconfigured_pending(accounts),
        "result_notifications_skipped": await stats.result_notify_skipped(),
    }


def _unconfigured_pending(accounts: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Unfinished rows of accounts no running replica announced, largest backlog first."""
    waiting = {
        name: item["pending"] + item["running"]
        for name, item in accounts.items()
        if not item["configured"] and item["pending"] + item["running"]
    }
    return dict(sorted(waiting.items(), key=lambda kv: (-kv[1], kv[0])))
