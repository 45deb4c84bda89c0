"""The attempt history (``invoice_sync.attempt``) as the engine writes it: one row per outcome
the flush applies, with each outcome's label, in the flush's own statement; a rescued lease's
row; and a real adapter's logins and lookups recorded with their attempt, without a secret."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from tests.factories import enqueue, invoice
from tests.fakes import ScriptedProvider, fast_settings, runtime
from tests.integration.testing.sandbox.refrens.calls import APP_ID, APP_SECRET, CUSTOMER, URL_KEY
from worker.claims import AttemptFacts, Resolution
from worker.config import HttpSettings
from worker.durations import parse_rate
from worker.engine.limits import AccountGate
from worker.engine.loop import Engine
from worker.engine.runtimes import AccountRuntime
from worker.outcome import (
    DeadLetter,
    Outcome,
    PauseAccount,
    PauseReason,
    RateLimited,
    Reason,
    Retry,
    Synced,
)
from worker.providers.base import Attempt, Credentials, HttpTimeouts
from worker.providers.refrens.adapter import Refrens, RefrensOptions
from worker.store.outbox import ClaimRequest, Outbox
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

WORKER = "w-history"


def engine(pool: asyncpg.Pool, rt: AccountRuntime, **settings: object) -> Engine:
    return Engine(
        outbox=Outbox(pool, worker_id=WORKER),
        runtimes={rt.name: rt},
        settings=fast_settings(**settings),
        listen_dsn=None,
        rand=lambda: 1.0,
    )


async def history(pool: asyncpg.Pool, key: str | None = None) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT * FROM invoice_sync.attempt WHERE $1::text IS NULL OR idempotency_key = $1"
        " ORDER BY idempotency_key, started_at, claim",
        key,
    )
    return [dict(row) for row in rows]


def scripted() -> ScriptedProvider:
    """Each key's answers in turn (the key names the outcome it tells)."""
    seen: Counter[str] = Counter()
    script: dict[str, list[Outcome]] = {
        "ok": [Synced(provider_invoice_id="p-ok", response={"id": "p-ok"})],
        "found": [Synced(provider_invoice_id="p-found", recovered=True)],
        "flaky": [
            Retry(
                error="HTTP 503: down\nfor maintenance",
                http_status=503,
                outcome_unknown=True,
                response={"message": "down"},
            ),
            Synced(provider_invoice_id="p-flaky"),
        ],
        "slow": [
            RateLimited(error="HTTP 429: slow down", after=0.01),
            Synced(provider_invoice_id="p-slow"),
        ],
        "bad": [
            DeadLetter(
                reason=Reason.REJECTED,
                error="HTTP 422: GSTIN invalid",
                http_status=422,
                response={"message": "GSTIN invalid"},
            )
        ],
    }

    def answer(attempt: Attempt) -> Outcome:
        seen[attempt.idempotency_key] += 1
        return script[attempt.idempotency_key][seen[attempt.idempotency_key] - 1]

    return ScriptedProvider(answer)


async def test_each_outcome_is_recorded_with_its_attempt(pool: asyncpg.Pool) -> None:
    ids = {key: await enqueue(pool, "shop", key) for key in ("ok", "found", "flaky", "slow", "bad")}
    before = datetime.now(UTC)
    await asyncio.wait_for(engine(pool, runtime(scripted())).run(drain=True), 20)

    rows = await history(pool)
    told = [(r["idempotency_key"], r["attempt"], r["claim"], r["outcome"]) for r in rows]
    assert told == [
        ("bad", 1, 1, "dead_letter"),
        ("flaky", 1, 1, "retry"),
        ("flaky", 2, 2, "synced"),
        ("found", 1, 1, "recovered"),
        ("ok", 1, 1, "synced"),
        ("slow", 1, 1, "rate_limited"),  # not spent: the next claim is attempt 1 again
        ("slow", 1, 2, "synced"),
    ]
    for row in rows:
        assert row["outbox_id"] == ids[row["idempotency_key"]]
        assert (row["account"], row["worker"], row["provider"]) == ("shop", WORKER, "scripted")
        assert row["started_at"] >= before
        assert row["duration_ms"] >= 0
    by = {(r["idempotency_key"], r["claim"]): r for r in rows}
    flaky = by["flaky", 1]
    assert (flaky["http_status"], flaky["outcome_unknown"], flaky["reason"]) == (503, True, None)
    assert flaky["error"] == "HTTP 503: down for maintenance"  # one line
    assert json.loads(flaky["response"]) == {"message": "down"}
    bad = by["bad", 1]
    assert (bad["http_status"], bad["reason"], bad["error"], bad["outcome_unknown"]) == (
        422,
        "rejected",
        "HTTP 422: GSTIN invalid",
        False,
    )
    assert json.loads(by["ok", 1]["response"]) == {"id": "p-ok"}
    assert by["slow", 1]["http_status"] == 429


async def test_a_pause_is_told_once_and_the_rows_it_held_back_are_released(
    pool: asyncpg.Pool,
) -> None:
    for i in range(6):
        await enqueue(pool, "shop", f"k{i}")
    expired = PauseAccount(
        reason=PauseReason.CREDITS_EXPIRED,
        invoice=DeadLetter(reason=Reason.CREDITS_EXPIRED, error="Credits Expired!!!"),
    )
    # Four calls at once, each a while: the first to answer pauses the account, the others
    # already in flight are given back.
    provider = ScriptedProvider(lambda a: expired, delay=0.05)
    await asyncio.wait_for(engine(pool, runtime(provider, concurrency=4)).run(drain=True), 20)
    outcomes = Counter(r["outcome"] for r in await history(pool))
    assert outcomes["paused"] == 1
    assert outcomes["released"] >= 1
    assert set(outcomes) == {"paused", "released"}
    [paused] = [r for r in await history(pool) if r["outcome"] == "paused"]
    assert (paused["reason"], paused["error"]) == ("credits_expired", "Credits Expired!!!")


def facts(outcome: str = "synced") -> AttemptFacts:
    return AttemptFacts(
        outcome=outcome, provider="scripted", started_at=datetime.now(UTC), duration_ms=5
    )


async def claim_one(outbox: Outbox, lease: float) -> Any:
    wants = {"shop": ClaimRequest(rows=1, rate=100.0, burst=10.0)}
    [row] = (await outbox.outbox_claim(wants, lease=lease, probe_cooldown=1.0)).rows
    return row


async def test_a_rescued_lease_is_recorded_then_replaced_by_a_late_outcome(
    pool: asyncpg.Pool,
) -> None:
    await enqueue(pool, "shop", "k1")
    gone = Outbox(pool, worker_id="gone")
    row = await claim_one(gone, lease=0.01)
    await asyncio.sleep(0.05)
    assert await Outbox(pool, worker_id="rescuer").outbox_rescue() == [row.id]
    [rescued] = await history(pool)
    assert (rescued["outcome"], rescued["worker"], rescued["outcome_unknown"]) == (
        "rescued",
        "gone",
        True,
    )
    assert (rescued["claim"], rescued["attempt"]) == (row.claim, 1)

    # Nobody claimed it since: the worker's own outcome still applies, and replaces the row.
    late = Resolution(id=row.id, claim=row.claim, kind="synced", provider_invoice_id="p1")
    summary = await gone.outbox_record([late], attempts=[facts()])
    assert summary.applied == {row.id}
    [told] = await history(pool)
    assert (told["outcome"], told["claim"], told["outcome_unknown"]) == ("synced", row.claim, False)


async def test_an_outcome_fenced_out_writes_no_attempt(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    slow, fast = Outbox(pool, worker_id="slow"), Outbox(pool, worker_id="fast")
    old = await claim_one(slow, lease=0.01)
    await asyncio.sleep(0.05)
    await fast.outbox_rescue()
    new = await claim_one(fast, lease=30)
    stale = Resolution(id=old.id, claim=old.claim, kind="synced", provider_invoice_id="p1")
    summary = await slow.outbox_record([stale], attempts=[facts()])
    assert not summary.applied
    assert [(r["claim"], r["outcome"]) for r in await history(pool)] == [(old.claim, "rescued")]
    assert new.claim == old.claim + 1


@pytest.fixture
async def refrens_sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("refrens", apps={APP_ID: APP_SECRET}, url_keys=[URL_KEY])
    yield handle
    await handle.stop()


def refrens_runtime(sandbox: SandboxHandle) -> AccountRuntime:
    adapter = Refrens(
        Credentials(base_url=sandbox.url + "/", token=None),
        RefrensOptions.model_validate(
            {"url_key": URL_KEY, "app_id": APP_ID, "app_secret": APP_SECRET}
        ),
        HttpTimeouts(connect=1.0, total=5.0),
    )
    return AccountRuntime(
        name="shop",
        provider_name="refrens",
        provider=adapter,
        gate=AccountGate(rate=parse_rate("1000/second"), concurrency=1),
        request_timeout=HttpSettings().request_timeout,
    )


async def test_logins_and_lookups_are_recorded_with_their_attempt(
    pool: asyncpg.Pool, refrens_sandbox: SandboxHandle
) -> None:
    doc = invoice("WEB-7", customer=CUSTOMER)
    await enqueue(pool, "shop", "first", doc)
    await asyncio.wait_for(engine(pool, refrens_runtime(refrens_sandbox)).run(drain=True), 20)
    # The same number again, after an attempt whose outcome is unknown: Refrens refuses the
    # duplicate, and the adapter looks the number up and finds the invoice.
    second = await enqueue(pool, "shop", "second", doc)
    await pool.execute(
        "UPDATE invoice_sync.outbox SET outcome_unknown = true, attempts = 1 WHERE id = $1",
        second,
    )
    await asyncio.wait_for(engine(pool, refrens_runtime(refrens_sandbox)).run(drain=True), 20)

    [first] = await history(pool, "first")
    assert (first["outcome"], first["http_status"], first["provider"]) == ("synced", 200, "refrens")
    [login] = json.loads(first["calls"])
    assert (login["kind"], login["http_status"]) == ("login", 201)
    assert login["duration_ms"] >= 0
    [found] = await history(pool, "second")
    assert found["outcome"] == "recovered"
    assert found["http_status"] is not None
    assert found["http_status"] >= 400  # the duplicate
    kinds = [(c["kind"], c["http_status"]) for c in json.loads(found["calls"])]
    # A new adapter: it logs in first. Then the create (refused: its status is the attempt's)
    # and the lookup.
    assert kinds == [("login", 201), ("lookup", 200)]
    everything = json.dumps(await history(pool), default=str)
    assert APP_SECRET not in everything
    assert "accessToken" not in everything
