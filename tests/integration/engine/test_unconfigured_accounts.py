"""Rows for an account no running replica is configured for: replicas announce their accounts
in the database as they refresh their metrics, and the gauge and `status` show the rows of the
accounts nobody announced (or whose announcement ran out)."""

from __future__ import annotations

import json

import asyncpg

from tests.factories import enqueue
from worker.cli.status import render_status
from worker.engine.metrics import Metrics, MetricsRefresher
from worker.store.outbox import WorkedAccounts
from worker.store.stats import gather_status

UNCONFIGURED = "invoice_sync_unconfigured_pending_invoices"


async def replica(pool: asyncpg.Pool, *accounts: str) -> Metrics:
    """One refresh by a replica configured for ``accounts``; returns its metrics."""
    metrics = Metrics()
    await MetricsRefresher(pool, metrics, lambda: WorkedAccounts(accounts)).refresh()
    return metrics


async def seed(pool: asyncpg.Pool) -> None:
    """shop (ours), outlet (another replica's), typo (nobody's, twice), gone (announced by a
    replica that has not been seen since its announcement ran out)."""
    for account, key in [
        ("shop", "s-1"),
        ("outlet", "o-1"),
        ("typo", "t-1"),
        ("typo", "t-2"),
        ("gone", "g-1"),
    ]:
        await enqueue(pool, account, key)
    await replica(pool, "outlet", "gone")
    await pool.execute(
        "UPDATE invoice_sync.replica_account SET expires_at = now() - interval '1 second'"
        " WHERE account = 'gone'"
    )


def unconfigured(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["account"]: sample.value
        for family in metrics.registry.collect()
        if family.name == UNCONFIGURED
        for sample in family.samples
    }


async def test_the_gauge_counts_rows_no_running_replica_is_configured_for(
    pool: asyncpg.Pool,
) -> None:
    await seed(pool)
    metrics = await replica(pool, "shop")
    assert unconfigured(metrics) == {"typo": 2, "gone": 1}
    # The configured accounts' own gauges are as before.
    assert metrics.registry.get_sample_value("invoice_sync_pending_invoices", {"account": "shop"})
    # A replica configured for typo starts: its rows are no longer anybody's concern here.
    await replica(pool, "typo")
    refresher = MetricsRefresher(pool, metrics, lambda: WorkedAccounts(["shop"]))
    await refresher.refresh()
    assert unconfigured(metrics) == {"gone": 1}


async def test_status_shows_rows_no_running_replica_is_configured_for(
    pool: asyncpg.Pool,
) -> None:
    await seed(pool)
    await replica(pool, "shop")
    status = await gather_status(pool)
    assert status["unconfigured_pending"] == {"gone": 1, "typo": 2}
    assert status["accounts"]["typo"]["configured"] is False
    assert status["accounts"]["shop"]["configured"] is True
    assert status["accounts"]["outlet"]["configured"] is True
    assert json.loads(json.dumps(status, default=str))["unconfigured_pending"]["typo"] == 2

    table = render_status(status)
    rows = {line.split()[0]: line.rstrip() for line in table.splitlines() if line.strip()}
    assert rows["typo"].endswith("no replica")
    assert rows["shop"].endswith("active")
    assert (
        "3 invoices wait for accounts no running replica is configured for: typo (2), gone (1)"
        in table
    )


async def test_an_account_without_rows_is_not_called_unworked(pool: asyncpg.Pool) -> None:
    """Replicas announce only their accounts with rows: one with history and nothing left is
    idle, and `status` must not say that no replica works it."""
    await pool.execute(
        "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
        " provider_invoice_id, attempts)"
        " VALUES (1, 'quiet', 'q-1', 'billclap', 'p-1', 1)"
    )
    await enqueue(pool, "typo", "t-1")
    await replica(pool, "quiet")
    table = render_status(await gather_status(pool))
    rows = {line.split()[0]: line.rstrip() for line in table.splitlines() if line.strip()}
    assert rows["quiet"].endswith("active")
    assert rows["typo"].endswith("no replica")


async def test_a_replica_works_the_tables_enabled_accounts_less_those_it_found_unusable(
    pool: asyncpg.Pool,
) -> None:
    """A replica holds no list of the table's accounts: the query says which are its."""
    await pool.execute(
        "INSERT INTO invoice_sync.account (name, provider, enabled, updated_by) VALUES"
        " ('db-shop', 'billclap', true, 'psql'), ('db-off', 'billclap', false, 'psql'),"
        " ('db-bad', 'billclap', true, 'psql')"
    )
    for account in ("db-shop", "db-off", "db-bad", "file-shop", "typo"):
        await enqueue(pool, account, "k-1")
    metrics = Metrics()
    worked = WorkedAccounts(["file-shop"], database=True, skip=["db-bad"])
    await MetricsRefresher(pool, metrics, lambda: worked).refresh()
    announced = await pool.fetch("SELECT account FROM invoice_sync.replica_account")
    assert sorted(r["account"] for r in announced) == ["db-shop", "file-shop"]
    assert unconfigured(metrics) == {"db-bad": 1, "db-off": 1, "typo": 1}
