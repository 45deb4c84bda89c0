"""An outcome the database refuses for one of its values does not keep the others out, and is
never turned into another outcome.

The refusals are real: a CHECK constraint (or a trigger) added to the test's synced table
refuses a value, as an index refuses an entry too large for it. Only a refused value (SQLSTATE
classes 22, 23, 54) sends a batch a row at a time; any other error keeps it whole, as through
an outage.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from structlog.testing import capture_logs

from tests.factories import enqueue, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.engine.loop import Engine
from worker.outcome import DeadLetter, Outcome, Reason, Synced
from worker.providers.base import Attempt
from worker.store.outbox import Outbox

ROWS = 6
NOT_WRITTEN = "the other outcomes were not written"


def engine(
    pool: asyncpg.Pool,
    answer: Callable[[Attempt], Outcome] | None = None,
    accounts: Sequence[str] = ("shop",),
) -> Engine:
    provider = ScriptedProvider(answer)
    return Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={name: runtime(provider, name=name) for name in accounts},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )


def answer(attempt: Attempt) -> Synced:
    """A synced answer for every row, with a link and an answer kept; ``k3``'s link and id
    are the values the tests' constraints refuse."""
    odd = attempt.idempotency_key == "k3"
    return Synced(
        provider_invoice_id="refused-id" if odd else f"p-{attempt.outbox_id}",
        link="https://x/refused" if odd else "https://x/ok",
        response={"note": "kept"},
    )


async def enqueue_rows(pool: asyncpg.Pool) -> None:
    for i in range(ROWS):
        await enqueue(pool, "shop", f"k{i}")


async def check(pool: asyncpg.Pool, table: str, name: str, condition: str) -> None:
    """A CHECK constraint on the test's ``table``: what refuses the tests' values."""
    await pool.execute(
        f"ALTER TABLE invoice_sync.{table} ADD CONSTRAINT {name} CHECK ({condition})"
    )


async def run_until(worker: Engine, reached: Callable[[], Awaitable[bool]], waited: str) -> None:
    """Run ``worker`` until ``reached()``, then a few flushes more, then stop it at once."""
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 10
    while not await reached():
        assert time.monotonic() < deadline, waited
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the flushes after it (nothing more is written)
    worker.force()
    await asyncio.wait_for(task, 15)


def synced_rows(pool: asyncpg.Pool, rows: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return await table_count(pool, "synced") >= rows

    return reached


def failed_flush(logs: Sequence[Mapping[str, Any]]) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return any(e["event"] == "flusher.failed" for e in logs)

    return reached


async def test_an_outcome_refused_as_it_came_is_written_without_the_providers_texts(
    pool: asyncpg.Pool,
) -> None:
    await check(pool, "synced", "no_refused_link", "link IS DISTINCT FROM 'https://x/refused'")
    await enqueue_rows(pool)
    with capture_logs() as logs:
        await asyncio.wait_for(engine(pool, answer).run(drain=True), 20)

    assert await table_count(pool, "outbox") == 0
    rows = {
        r["idempotency_key"]: r
        for r in await pool.fetch(
            "SELECT idempotency_key, provider_invoice_id, link, response FROM invoice_sync.synced"
        )
    }
    assert len(rows) == ROWS
    # Still synced, with the provider's id: only its texts (the link, the answer) left out.
    odd = rows.pop("k3")
    assert (odd["provider_invoice_id"], odd["link"], odd["response"]) == ("refused-id", None, None)
    assert all(r["link"] == "https://x/ok" for r in rows.values())
    assert all(json.loads(r["response"]) == {"note": "kept"} for r in rows.values())
    (reduced,) = [e for e in logs if e["event"] == "flusher.outcome_reduced"]
    assert reduced["outcome"] == "synced"
    assert reduced["error"] == "SQLSTATE 23514, constraint no_refused_link, table synced"
    assert sum(e["event"] == "invoice.synced" for e in logs) == ROWS


async def test_an_outcome_refused_even_reduced_waits_and_the_others_are_written(
    pool: asyncpg.Pool,
) -> None:
    # The refused value is the provider's id, which the reduced outcome keeps: the row waits
    # in the worker, still leased to it, never given back as if its outcome were unknown.
    await check(pool, "synced", "no_refused_id", "provider_invoice_id <> 'refused-id'")
    await enqueue_rows(pool)
    with capture_logs() as logs:
        await run_until(engine(pool, answer), synced_rows(pool, ROWS - 1), NOT_WRITTEN)

    assert await table_count(pool, "synced") == ROWS - 1
    odd = await pool.fetchrow(
        "SELECT state, lease_owner, attempts FROM invoice_sync.outbox WHERE idempotency_key = 'k3'"
    )
    assert tuple(odd) == ("running", "test", 1)
    refused = [e for e in logs if e["event"] == "flusher.outcome_refused"]
    assert refused
    assert {(e["error"], e["provider_invoice_id"]) for e in refused} == {
        ("SQLSTATE 23514, constraint no_refused_id, table synced", "refused-id")
    }


async def test_a_batch_every_row_of_which_is_refused_is_kept_whole(pool: asyncpg.Pool) -> None:
    # A fault of every row (the schema, not a value): nothing is written, reduced or otherwise.
    await check(pool, "synced", "refuses_all", "provider_invoice_id = 'never'")
    await enqueue_rows(pool)
    with capture_logs() as logs:
        await run_until(engine(pool), failed_flush(logs), "no flush was tried")

    assert not [e for e in logs if e["event"] == "flusher.outcome_reduced"]
    states = await pool.fetch("SELECT state, lease_owner FROM invoice_sync.outbox")
    assert [tuple(r) for r in states] == [("running", "test")] * ROWS
    assert await table_count(pool, "synced") == 0
    assert await table_count(pool, "attempt") == 0


async def test_an_error_that_is_not_a_refused_value_keeps_the_batch_whole(
    pool: asyncpg.Pool,
) -> None:
    # A trigger's own error (SQLSTATE P0001) for one row: not a value the table cannot hold,
    # so the batch is not taken apart: no other row is written without it.
    await pool.execute(
        """
        CREATE FUNCTION invoice_sync.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.provider_invoice_id = 'refused-id' THEN
                RAISE EXCEPTION 'not this one';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse BEFORE INSERT ON invoice_sync.synced
            FOR EACH ROW EXECUTE FUNCTION invoice_sync.test_refuse();
        """
    )
    await enqueue_rows(pool)
    with capture_logs() as logs:
        await run_until(engine(pool, answer), failed_flush(logs), "no flush was tried")

    assert await table_count(pool, "synced") == 0
    assert not [e for e in logs if e["event"].startswith("flusher.outcome_")]


async def test_refused_rows_that_came_first_do_not_hold_up_the_rest(pool: asyncpg.Pool) -> None:
    # More refused rows than the first tries of a batch, all ahead of the good ones: the rows
    # tried first are taken across the batch, and rows held back stay apart from later batches.
    await check(pool, "synced", "no_refused_id", "provider_invoice_id <> 'refused-id'")
    for i in range(10):
        await enqueue(pool, "shop", f"bad-{i}")
    for i in range(10):
        await enqueue(pool, "shop", f"good-{i}")

    def answer(attempt: Attempt) -> Synced:
        bad = attempt.idempotency_key.startswith("bad")
        return Synced(provider_invoice_id="refused-id" if bad else f"p-{attempt.outbox_id}")

    await run_until(engine(pool, answer), synced_rows(pool, 10), NOT_WRITTEN)
    synced = {r["idempotency_key"] for r in await pool.fetch("SELECT * FROM invoice_sync.synced")}
    assert synced == {f"good-{i}" for i in range(10)}
    held = await pool.fetch("SELECT state, lease_owner FROM invoice_sync.outbox")
    assert [tuple(r) for r in held] == [("running", "test")] * 10


async def test_a_dead_letter_refused_with_its_message_is_written_with_a_note_instead(
    pool: asyncpg.Pool,
) -> None:
    await check(pool, "dead_letter", "no_refused_error", "error NOT LIKE '%refused-error%'")
    await enqueue_rows(pool)

    def answer(attempt: Attempt) -> Outcome:
        if attempt.idempotency_key == "k3":
            return DeadLetter(reason=Reason.REJECTED, error="refused-error", http_status=422)
        return Synced(provider_invoice_id=f"p-{attempt.outbox_id}")

    with capture_logs() as logs:
        await asyncio.wait_for(engine(pool, answer).run(drain=True), 20)

    assert await table_count(pool, "synced") == ROWS - 1
    dead = await pool.fetchrow("SELECT reason, error, http_status FROM invoice_sync.dead_letter")
    assert (dead["reason"], dead["http_status"]) == ("rejected", 422)
    assert dead["error"] == (
        "the provider's answer could not be stored as it came (SQLSTATE 23514, constraint"
        " no_refused_error, table dead_letter); its texts are left out"
    )
    reduced = [e for e in logs if e["event"] == "flusher.outcome_reduced"]
    assert [(e["outcome"], e["texts_left_out"]) for e in reduced] == [("dead", True)]


async def test_an_account_whose_rows_are_all_refused_does_not_hold_up_another(
    pool: asyncpg.Pool,
) -> None:
    # Two accounts, eight rows each: the first rows tried are one of each account, so the good
    # account's rows are written and the refused ones held back (not taken for a schema fault).
    await check(pool, "synced", "no_refused_id", "provider_invoice_id <> 'refused-id'")
    for account in ("bad", "good"):
        for i in range(8):
            await enqueue(pool, account, f"{account}-{i}")

    def answer(attempt: Attempt) -> Synced:
        bad = attempt.account == "bad"
        return Synced(provider_invoice_id="refused-id" if bad else f"p-{attempt.outbox_id}")

    worker = engine(pool, answer, accounts=("bad", "good"))
    await run_until(worker, synced_rows(pool, 8), NOT_WRITTEN)
    synced = {r["account"] for r in await pool.fetch("SELECT account FROM invoice_sync.synced")}
    assert synced == {"good"}
    assert await table_count(pool, "synced") == 8
