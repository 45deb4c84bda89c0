"""A producer cannot change what the outbox's triggers and enqueue() compare with: they run with
search_path = pg_catalog, pg_temp (017). Before, a producer owning a schema put an operator `=`
that is never true ahead of pg_catalog, and inserted a synced key again; or a clock_timestamp()
of its own, and dated its rows in the past, ahead of every other producer's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.factories import invoice
from tests.integration.store.roles.access import Logins
from tests.logins import user_of

HIJACK = """
CREATE FUNCTION hijack.never(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR hijack.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hijack.never);
CREATE FUNCTION hijack.clock_timestamp() RETURNS timestamptz LANGUAGE sql
    AS $$SELECT timestamptz '1970-01-01 00:00:00+00'$$;
CREATE FUNCTION hijack.now() RETURNS timestamptz LANGUAGE sql
    AS $$SELECT timestamptz '1970-01-01 00:00:00+00'$$;
SET search_path = hijack, pg_catalog, pg_temp;
"""


@pytest.fixture
async def hijack_schema(dsn: str, logins: Logins) -> AsyncIterator[None]:
    """A schema the producer owns (as an app's own tables' would be), dropped afterwards."""
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute(f"CREATE SCHEMA hijack AUTHORIZATION {user_of(logins.producer)}")
        yield
        await owner.execute("DROP SCHEMA hijack CASCADE")
    finally:
        await owner.close()


@pytest.mark.usefixtures("hijack_schema")
async def test_a_producer_schema_ahead_of_pg_catalog_changes_nothing(
    dsn: str, logins: Logins
) -> None:
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute(
            "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
            " provider_invoice_id, attempts) VALUES (1, 'shop', 'done-1', 'billclap', '9', 1)"
        )
    finally:
        await owner.close()
    body = json.dumps(invoice(number="X-1"))
    producer = await asyncpg.connect(logins.producer)
    try:
        await producer.execute(HIJACK)
        # The synced key: skipped, by a direct INSERT and by enqueue() (which answers its id).
        await producer.execute(
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
            " VALUES ('shop', 'done-1', $1::jsonb)",
            body,
        )
        assert (
            await producer.fetchval(
                "SELECT invoice_sync.enqueue('shop', 'done-1', $1::jsonb)", body
            )
            == 1
        )
        # A row dated in the past is dated now.
        await producer.execute(
            "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at)"
            " VALUES ('shop', 'early-1', $1::jsonb, '1970-01-01')",
            body,
        )
    finally:
        await producer.close()
    owner = await asyncpg.connect(dsn)
    try:
        rows = await owner.fetch(
            "SELECT idempotency_key, available_at > now() - interval '1 minute' AS dated_now"
            " FROM invoice_sync.outbox"
        )
    finally:
        await owner.close()
    assert [(r["idempotency_key"], r["dated_now"]) for r in rows] == [("early-1", True)]
