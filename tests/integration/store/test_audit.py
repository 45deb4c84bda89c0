"""The audit log: an entry commits with its action's transaction or not at all."""

from __future__ import annotations

import asyncpg

from worker.store.audit import AuditEntry, AuditLog, audit_append, cli_actor


def entry(action: str = "pause", **extra: object) -> AuditEntry:
    values: dict[str, object] = {
        "actor": "ops@host",
        "action": action,
        "target": {"account": "shop"},
        "rows": 1,
    }
    values.update(extra)
    return AuditEntry(**values)  # type: ignore[arg-type]


async def test_an_entry_rolls_back_with_its_action(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await audit_append(conn, entry())
        await transaction.rollback()  # the action failed
        async with conn.transaction():
            await audit_append(conn, entry("resume", reason="provider fixed"))
    [only] = await AuditLog(pool).audit_list()
    assert (only.action, only.actor, only.target, only.rows, only.reason) == (
        "resume",
        "ops@host",
        {"account": "shop"},
        1,
        "provider fixed",
    )


async def test_the_log_reads_newest_first_in_pages(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for n in range(5):
            await audit_append(conn, entry("purge", rows=n, target={"ids": [n]}))
    log = AuditLog(pool)
    first = await log.audit_list(limit=2)
    assert [e.rows for e in first] == [4, 3]
    rest = await log.audit_list(before=first[-1].id, limit=10)
    assert [e.rows for e in rest] == [2, 1, 0]


async def test_a_long_reason_is_cut_not_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await audit_append(conn, entry(reason="x" * 5000))
    [only] = await AuditLog(pool).audit_list()
    assert only.reason == "x" * 2000


def test_the_cli_actor_names_user_and_host() -> None:
    user, _, host = cli_actor().partition("@")
    assert user
    assert host
