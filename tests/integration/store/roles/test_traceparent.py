"""A producer login writes a traceparent (migration 011 and sql/roles.sql), and an upgrade to
011 does not stop producers calling enqueue() before roles.sql is rerun."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.store.roles.access import Logins, connected
from tests.integration.store.test_traceparent import BAD, ENQUEUE, GOOD, INSERT, PAYLOAD
from tests.logins import ROLES_SQL, login
from tests.migrations import migrate_before
from worker.store import migrate


async def test_a_producer_login_writes_it_by_insert_and_by_enqueue(logins: Logins) -> None:
    async def write(conn: asyncpg.Connection) -> None:
        await conn.execute(INSERT, "p-insert", PAYLOAD, GOOD)
        await conn.fetchval(ENQUEUE, "p-enqueue", PAYLOAD, GOOD)
        with pytest.raises(asyncpg.CheckViolationError, match="p_traceparent"):
            await conn.fetchval(ENQUEUE, "p-bad", PAYLOAD, BAD["uppercase"])

    await connected(logins.producer, write)
    stored = await connected(
        logins.worker,
        lambda c: c.fetch("SELECT idempotency_key, traceparent FROM invoice_sync.outbox"),
    )
    assert {r["idempotency_key"]: r["traceparent"] for r in stored} == {
        "p-insert": GOOD,
        "p-enqueue": GOOD,
    }


TRACEPARENT_MIGRATION = 11


def roles_sql_before_011() -> str:
    """sql/roles.sql as the release before 011 shipped it: the four-parameter enqueue() and
    no traceparent column (the only two changes 011 made to it), and without the grants on the
    account table and its change counter that later migrations (012, 016) added, nor the dead
    letters' outcome_unknown column (017)."""
    text = "".join(
        line
        for line in ROLES_SQL.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith(
            (
                "GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.account ",
                "GRANT SELECT, UPDATE ON invoice_sync.account_generation ",
            )
        )
    )
    before = text.replace("jsonb, timestamptz, text)", "jsonb, timestamptz)")
    before = before.replace("available_at, traceparent)", "available_at)")
    before = before.replace("replayed_to, outcome_unknown)", "replayed_to)")
    assert before.count("jsonb, timestamptz)") == 2
    assert "traceparent" not in before
    return before


async def test_upgrading_keeps_producers_calling_enqueue_before_roles_sql_is_rerun(
    empty_dsn: str,
) -> None:
    """The migration replaces enqueue(); the groups keep calling it (with three arguments, and
    with a traceparent) without waiting for sql/roles.sql."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate_before(conn, TRACEPARENT_MIGRATION)
        await conn.execute(roles_sql_before_011())
    finally:
        await conn.close()
    async with (
        login(empty_dsn, "producer", ("shop",)) as producer,
        login(empty_dsn, "worker") as worker,
    ):
        await migrate.migrate(empty_dsn)

        async def produce(conn: asyncpg.Connection) -> None:
            await conn.fetchval("SELECT invoice_sync.enqueue('shop', 'old', $1::jsonb)", PAYLOAD)
            await conn.fetchval(ENQUEUE, "new", PAYLOAD, GOOD)

        await connected(producer, produce)
        await connected(
            worker, lambda c: c.fetchval(ENQUEUE.replace("'shop'", "'other'"), "w", PAYLOAD, None)
        )
        count = await connected(
            empty_dsn, lambda c: c.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        )
        assert count == 3
