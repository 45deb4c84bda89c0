"""An outcome the database refuses does not keep the others out.

The refusals are real: a CHECK constraint added to the test's synced table refuses one
provider id (as an index refuses a value too large for it), or every one (a fault of the
statement rather than of a row).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from structlog.testing import capture_logs

from tests.factories import enqueue, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.engine.flusher import REFUSED_DELAY
from worker.engine.loop import Engine
from worker.outcome import Synced
from worker.providers.base import Attempt
from worker.store.outbox import Outbox


def engine(pool: asyncpg.Pool, provider: ScriptedProvider) -> Engine:
    return Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={"shop": runtime(provider)},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )


def answer(attempt: Attempt) -> Synced:
    refused = attempt.idempotency_key == "k3"
    return Synced(provider_invoice_id="refused" if refused else f"p-{attempt.outbox_id}")


async def test_a_refused_outcome_is_given_back_and_the_others_are_written(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        "ALTER TABLE invoice_sync.synced ADD CONSTRAINT refuses_one"
        " CHECK (provider_invoice_id <> 'refused')"
    )
    for i in range(6):
        await enqueue(pool, "shop", f"k{i}")
    worker = engine(pool, ScriptedProvider(answer))
    with capture_logs() as logs:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 10
        while (
            await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox WHERE state = 'pending'")
            == 0
            or await table_count(pool, "synced") < 5
        ):
            assert time.monotonic() < deadline, "the other outcomes were not written"
            await asyncio.sleep(0.05)
        worker.stop()
        await asyncio.wait_for(task, 10)

    assert await table_count(pool, "synced") == 5
    row = await pool.fetchrow(
        "SELECT state, attempts, outcome_unknown, last_error, lease_owner,"
        " extract(epoch FROM available_at - now()) AS wait"
        " FROM invoice_sync.outbox WHERE idempotency_key = 'k3'"
    )
    # Given back as a call whose outcome is unknown: the attempt spent, tried again later.
    assert (row["state"], row["attempts"], row["outcome_unknown"]) == ("pending", 1, True)
    assert row["lease_owner"] is None
    assert REFUSED_DELAY - 30 < row["wait"] <= REFUSED_DELAY
    assert "the outcome could not be written" in row["last_error"]
    assert "refuses_one" in row["last_error"]
    refused = [e for e in logs if e["event"] == "flusher.outcome_refused"]
    assert [(e["outbox_id"], e["outcome"]) for e in refused] == [
        (
            await pool.fetchval("SELECT id FROM invoice_sync.outbox WHERE idempotency_key = 'k3'"),
            "synced",
        )
    ]
    history = await pool.fetchval(
        "SELECT outcome FROM invoice_sync.attempt WHERE idempotency_key = 'k3'"
    )
    assert history == "released"


async def test_when_every_row_is_refused_none_is_given_back(pool: asyncpg.Pool) -> None:
    # A fault of the statement, not of a row: the outcomes are kept (as through an outage),
    # never turned into unknown ones.
    await pool.execute(
        "ALTER TABLE invoice_sync.synced ADD CONSTRAINT refuses_all"
        " CHECK (provider_invoice_id = 'never')"
    )
    for i in range(4):
        await enqueue(pool, "shop", f"k{i}")
    worker = engine(pool, ScriptedProvider())
    with capture_logs() as logs:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 10
        while not any(e["event"] == "flusher.failed" for e in logs):
            assert time.monotonic() < deadline, "no flush was tried"
            await asyncio.sleep(0.05)
        worker.force()
        await asyncio.wait_for(task, 15)

    assert not [e for e in logs if e["event"] == "flusher.outcome_refused"]
    states = await pool.fetch("SELECT state, lease_owner FROM invoice_sync.outbox")
    assert [tuple(r) for r in states] == [("running", "test")] * 4
    assert await table_count(pool, "synced") == 0
    assert await table_count(pool, "attempt") == 0
