"""`dlq replay` and `dlq purge` are audited in their own transaction; dry runs are not."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from tests.factories import table_count
from tests.integration.store.test_dead_letters import insert_dead
from worker.errors import StoreError
from worker.store.audit import AuditEntry, AuditLog
from worker.store.dead_letters import DeadLetterStore


def entry(action: str, actor: str = "ops@h") -> AuditEntry:
    return AuditEntry(actor=actor, action=action, target={}, rows=0, reason="fixed upstream")


async def test_a_replay_is_audited_and_a_dry_run_is_not(pool: asyncpg.Pool) -> None:
    await insert_dead(pool, 1)
    store = DeadLetterStore(pool)
    await store.dead_letter_replay([1], dry_run=True, audit=entry("replay"))
    assert await AuditLog(pool).audit_list() == []
    await store.dead_letter_replay([1, 2], audit=entry("replay"))
    [told] = await AuditLog(pool).audit_list()
    assert (told.action, told.target, told.rows, told.reason) == (
        "replay",
        {"ids": [1, 2]},
        1,  # 2 is not a dead letter
        "fixed upstream",
    )


async def test_a_purge_is_audited_and_rolls_back_with_its_entry(pool: asyncpg.Pool) -> None:
    for n in (1, 2):
        await insert_dead(pool, n, age=timedelta(days=40))
    store = DeadLetterStore(pool)
    with pytest.raises(StoreError):
        await store.dead_letter_purge(30 * 86400, audit=entry("purge", actor="x" * 300))
    assert await table_count(pool, "dead_letter") == 2  # the entry failed: nothing deleted
    await store.dead_letter_purge(30 * 86400, dry_run=True, audit=entry("purge"))
    assert await AuditLog(pool).audit_list() == []
    await store.dead_letter_purge(30 * 86400, audit=entry("purge"))
    [told] = await AuditLog(pool).audit_list()
    assert (told.action, told.rows) == ("purge", 2)
    assert await table_count(pool, "dead_letter") == 0
