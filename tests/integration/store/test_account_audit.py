"""An operator's pause and resume are audited in their own transaction."""

from __future__ import annotations

import asyncpg
import pytest

from worker.errors import StoreError
from worker.store.accounts import AccountStore
from worker.store.audit import AuditLog


async def paused(pool: asyncpg.Pool) -> bool | None:
    value: bool | None = await pool.fetchval(
        "SELECT paused FROM invoice_sync.account_state WHERE account = 'shop'"
    )
    return value


async def test_pause_and_resume_are_audited(pool: asyncpg.Pool) -> None:
    store = AccountStore(pool)
    await store.account_pause("shop", "paused by an operator", actor="ops@h", reason="billing")
    assert await store.account_resume("shop", actor="ops@h")
    assert not await store.account_resume("other", actor="ops@h", reason="typo")
    told = [
        (e.action, e.actor, e.target, e.rows, e.reason) for e in await AuditLog(pool).audit_list()
    ]
    assert told == [
        ("resume", "ops@h", {"account": "other"}, 0, "typo"),
        ("resume", "ops@h", {"account": "shop"}, 1, None),
        ("pause", "ops@h", {"account": "shop"}, 1, "billing"),
    ]


async def test_a_pause_whose_entry_fails_is_not_applied(pool: asyncpg.Pool) -> None:
    # The audit table refuses an actor over 200 characters: the pause rolls back with it.
    with pytest.raises(StoreError):
        await AccountStore(pool).account_pause("shop", "paused by an operator", actor="x" * 300)
    assert await paused(pool) is None
    assert await AuditLog(pool).audit_list() == []
