"""``invoice-sync status``: counts by account and state, oldest pending age, dead letters by
reason, synced rate, account pauses, and the rows of accounts no running replica is configured
for (nobody claims them), as a table or as JSON."""

from __future__ import annotations

from typing import Any

import asyncpg

from worker.store import database
from worker.store.accounts import AccountStore
from worker.store.queries import queries


async def gather_status(pool: asyncpg.Pool) -> dict[str, Any]:
    q = queries()
    outbox = await database.run(lambda: pool.fetch(q["status_outbox"]))
    synced = await database.run(lambda: pool.fetch(q["status_synced"]))
    dead = await database.run(lambda: pool.fetch(q["status_dead_letter"]))
    states = await AccountStore(pool).account_state_list()
    live = await database.run(lambda: pool.fetch(q["replica_account_live"]))
    worked = {row["account"] for row in live}
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
    }


def _unconfigured_pending(accounts: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Unfinished rows of accounts no running replica announced, largest backlog first."""
    waiting = {
        name: item["pending"] + item["running"]
        for name, item in accounts.items()
        if not item["configured"] and item["pending"] + item["running"]
    }
    return dict(sorted(waiting.items(), key=lambda kv: (-kv[1], kv[0])))


def render_status(status: dict[str, Any]) -> str:
    header = ("account", "pending", "running", "synced", "dead", "oldest", "rate/min", "state")
    rows = [header]
    for name, item in status["accounts"].items():
        dead = sum(item["dead_letter"].values())
        age = item["oldest_pending_age_s"]
        paused = item["paused"]
        state = f"paused: {paused['reason']}" if paused else "active"
        if not paused and not item["configured"]:
            state = "no replica"
        rows.append(
            (
                name,
                str(item["pending"]),
                str(item["running"]),
                str(item["synced"]),
                str(dead),
                "-" if age is None else f"{age:.0f}s",
                str(item["synced_last_minute"]),
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    reasons: dict[str, int] = {}
    for item in status["accounts"].values():
        for reason, count in item["dead_letter"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    if reasons:
        lines.append("")
        lines.append(
            "dead letters by reason: "
            + ", ".join(f"{r}={c}" for r, c in sorted(reasons.items(), key=lambda kv: -kv[1]))
        )
    unworked = status["unconfigured_pending"]
    if unworked:
        lines.append("")
        lines.append(
            f"{sum(unworked.values())} invoices wait for accounts no running replica is "
            "configured for: " + ", ".join(f"{a} ({n})" for a, n in unworked.items())
        )
    if len(rows) == 1:
        lines.append("(the outbox is empty and nothing has been synced yet)")
    return "\n".join(lines)
