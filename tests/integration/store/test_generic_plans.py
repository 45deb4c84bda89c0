"""The engine's pool runs its statements on generic plans (``worker.engine.daemon.worker_pool``):
planned once, for any parameter values. That holds only while a statement's generic plan reads
the tables the way its plan for given values does: this checks each statement the engine's pool
runs, on tables filled enough that a wrong choice would show (a scan of the whole outbox, say)."""

from __future__ import annotations

import re

import asyncpg
import pytest

from worker.store.queries import queries

# Each statement with values to run it with (a claim for two accounts, a flush of one outcome).
STATEMENTS = {
    "outbox_claim": (
        "('w1', ARRAY['shop', 'other'], ARRAY[32, 5], 300, 60,"
        " ARRAY[1e6, 1]::float8[], ARRAY[1e6, 1]::float8[], 262144)"
    ),
    "outbox_ready": "('', 1000, 100, true)",
    "outbox_record": """('w1', '[{"id": 5, "claim": 1, "kind": "synced"}]')""",
    "outbox_rescue": "(1000)",
    "attempt_prune": "(604800, 5000)",
    "outbox_unfinished": "(ARRAY['shop'], true, ARRAY[]::text[])",
    "metrics_outbox": "(ARRAY['shop'], true, ARRAY[]::text[])",
    "account_generation": "",
    "account_fingerprint": "",
}
SCAN = re.compile(r"(?:->\s+)?((?:Parallel )?(?:Seq|Index|Index Only|Bitmap Heap) Scan[^(]*)")


async def fill(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)"
        " SELECT CASE WHEN i % 10 = 0 THEN 'other' ELSE 'shop' END, 'k' || i,"
        " jsonb_build_object('number', 'N-' || i) FROM generate_series(1, 5000) AS i"
    )
    await conn.execute(
        "INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key, attempt,"
        " worker, started_at, duration_ms, outcome, outcome_unknown)"
        " SELECT i, 1, 'shop', 'k' || i, 1, 'w', now() - (i % 1000) * interval '1 second', 1,"
        " 'retry', false FROM generate_series(1, 20000) AS i"
    )
    await conn.execute("ANALYZE")


async def scans(conn: asyncpg.Connection, name: str, values: str, mode: str) -> list[str]:
    """The tables' scan nodes of ``name``'s plan under ``plan_cache_mode = mode``."""
    await conn.execute(f"SET plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE checked AS {queries()[name].rstrip().rstrip(';')}")
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            plan = await conn.fetch(f"EXPLAIN (COSTS OFF) EXECUTE checked{values}")
        finally:
            await transaction.rollback()
    finally:
        await conn.execute("DEALLOCATE checked")
    found = (SCAN.search(row[0]) for row in plan)
    return sorted(match.group(1).strip() for match in found if match)


@pytest.mark.parametrize("name", sorted(STATEMENTS))
async def test_a_generic_plan_reads_the_tables_as_a_plan_for_the_values_does(
    dsn: str, name: str
) -> None:
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        await fill(conn)
        custom = await scans(conn, name, STATEMENTS[name], "force_custom_plan")
        generic = await scans(conn, name, STATEMENTS[name], "force_generic_plan")
    finally:
        await conn.close()
    assert custom, "no scan found: the pattern no longer matches EXPLAIN's output"
    assert generic == custom
