import asyncio
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.factories import enqueue, invoice, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.engine.database_accounts import DatabaseLoader
from worker.engine.fleet import Fleet
from worker.engine.loop import DIRECT_CLAIM_ACCOUNTS, Engine
from worker.outcome import (
    DeadLetter,
    Outcome,
    PauseAccount,
    PauseReason,
    Reason,
    Retry,
    Synced,
)
from worker.providers.base import Attempt
from worker.sealed import Keyring, decode_key, new_key
from worker.store.account_rows import AccountRow, AccountWriter
from worker.store.outbox import ClaimRequest, ClaimResult, Outbox, ReadyWalk


def engine(
    pool: asyncpg.Pool,
    dsn: str | None,
    provider: ScriptedProvider,
    concurrency: int = 4,
    **settings: object,
) -> Engine:
    return Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes={"shop": runtime(provider, concurrency=concurrency)},
        settings=fast_settings(**settings),
        listen_dsn=dsn,
        rand=lambda: 1.0,
    )


async def test_drain_syncs_everything_and_exits(pool: asyncpg.Pool) -> None:
    for i in range(25):
        await enqueue(pool, "shop", f"k{i}")
    provider = ScriptedProvider()
    with capture_logs() as logs:
        await asyncio.wait_for(engine(pool, None, provider).run(drain=True), 20)
    assert await table_count(pool, "synced") == 25
    assert await table_count(pool, "outbox") == 0
    assert len(provider.calls) == 25
    assert sum(e["event"] == "invoice.synced" for e in logs) == 25


async def test_notify_wakes_an_idle_worker_long_before_the_poll(
    pool: asyncpg.Pool, dsn: str
) -> None:
    provider = ScriptedProvider()
    worker = engine(pool, dsn, provider, poll_interval=60)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)  # idle, listening
    started = time.monotonic()
    await enqueue(pool, "shop", "k1")
    while await table_count(pool, "synced") == 0:
        assert time.monotonic() - started < 5, "NOTIFY did not wake the worker"
        await asyncio.sleep(0.02)
    worker.stop()
    await asyncio.wait_for(task, 10)


async def test_invalid_payload_is_dead_lettered_and_never_sent(pool: asyncpg.Pool) -> None:
    await enqueue(
        pool, "shop", "bad", invoice(lines=[{"name": "x", "quantity": 0, "unit_price": 1}])
    )
    provider = ScriptedProvider()
    await asyncio.wait_for(engine(pool, None, provider).run(drain=True), 20)
    dead = await pool.fetchrow("SELECT reason, error FROM invoice_sync.dead_letter")
    assert dead["reason"] == "invalid_payload"
    assert "lines.0.quantity" in dead["error"]
    assert provider.calls == []


async def test_retries_then_exhausts(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    provider = ScriptedProvider(lambda a: Retry(error="HTTP 500: boom", http_status=500))
    await asyncio.wait_for(engine(pool, None, provider, max_attempts=3).run(drain=True), 20)
    dead = await pool.fetchrow("SELECT reason, error, attempts FROM invoice_sync.dead_letter")
    assert dead["reason"] == "exhausted"
    assert dead["attempts"] == 3
    assert "boom" in dead["error"]
    assert [a.number for a in provider.calls] == [1, 2, 3]


async def test_unknown_outcome_is_remembered_by_the_next_attempt(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")

    def answer(a: Attempt) -> Retry | Synced:
        if a.number == 1:
            return Retry(error="timed out", outcome_unknown=True)
        return Synced(provider_invoice_id="1")

    provider = ScriptedProvider(answer)
    await asyncio.wait_for(engine(pool, None, provider).run(drain=True), 20)
    assert [a.prior_unknown for a in provider.calls] == [False, True]


async def test_unknown_outcome_without_a_safe_retry_is_parked_as_ambiguous(
    pool: asyncpg.Pool,
) -> None:
    await enqueue(pool, "shop", "k1", invoice(number=None))
    provider = ScriptedProvider(lambda a: Retry(error="timed out", outcome_unknown=True))
    await asyncio.wait_for(engine(pool, None, provider).run(drain=True), 20)
    dead = await pool.fetchrow("SELECT reason FROM invoice_sync.dead_letter")
    assert dead["reason"] == "ambiguous"
    assert len(provider.calls) == 1  # never blindly sent again


async def test_account_pause_dead_letters_one_and_holds_the_rest(pool: asyncpg.Pool) -> None:
    for i in range(10):
        await enqueue(pool, "shop", f"k{i}")
    expired = PauseAccount(
        reason=PauseReason.CREDITS_EXPIRED,
        invoice=DeadLetter(
            reason=Reason.CREDITS_EXPIRED, error="Credits Expired!!!", http_status=500
        ),
    )
    provider = ScriptedProvider(lambda a: expired)
    with capture_logs() as logs:
        await asyncio.wait_for(engine(pool, None, provider).run(drain=True), 20)
    assert await table_count(pool, "dead_letter") == 1
    assert await table_count(pool, "outbox") == 9
    state = await pool.fetchrow("SELECT paused, pause_reason FROM invoice_sync.account_state")
    assert dict(state) == {"paused": True, "pause_reason": "credits_expired"}
    assert any(e["event"] == "account.paused" for e in logs)
    assert any(e["event"] == "worker.drain_left_paused" for e in logs)


async def test_probe_success_resumes_the_account(pool: asyncpg.Pool) -> None:
    for i in range(3):
        await enqueue(pool, "shop", f"k{i}")
    calls = 0

    def answer(a: Attempt) -> PauseAccount | Synced:
        nonlocal calls
        calls += 1
        if calls == 1:
            return PauseAccount(
                reason=PauseReason.AUTH_FAILED,
                invoice=DeadLetter(reason=Reason.AUTH_FAILED, error="Invalid token type"),
            )
        return Synced(provider_invoice_id=str(calls))

    provider = ScriptedProvider(answer)
    worker = engine(pool, None, provider, concurrency=1, pause_cooldown=0.3)
    with capture_logs() as logs:
        await asyncio.wait_for(
            worker.run(drain=False) if False else _run_until_synced(worker, pool, 2), 20
        )
    assert any(e["event"] == "account.resumed" for e in logs)
    assert not await pool.fetchval("SELECT paused FROM invoice_sync.account_state")


async def _run_until_synced(worker: Engine, pool: asyncpg.Pool, count: int) -> None:
    task = asyncio.create_task(worker.run())
    while await table_count(pool, "synced") < count:
        await asyncio.sleep(0.05)
    worker.stop()
    await task


async def test_shutdown_gives_back_rows_not_yet_sent(pool: asyncpg.Pool) -> None:
    for i in range(4):
        await enqueue(pool, "shop", f"k{i}")
    provider = ScriptedProvider(delay=0.5)
    # One call at a time: one row in flight, one leased and waiting for the call slot, the
    # rest unclaimed. The waiting one is given back unsent.
    worker = engine(pool, None, provider, concurrency=1, shutdown_grace=5)
    task = asyncio.create_task(worker.run())
    while not provider.calls:
        await asyncio.sleep(0.01)
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert await table_count(pool, "synced") == 1  # the in-flight call finished and was written
    rows = await pool.fetch("SELECT state, attempts, lease_owner FROM invoice_sync.outbox")
    assert len(rows) == 3
    assert all(r["state"] == "pending" and r["lease_owner"] is None for r in rows)
    assert all(r["attempts"] == 0 for r in rows)  # the waiting one was released, attempt given back


async def test_forced_shutdown_releases_in_flight_rows_as_unknown(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    provider = ScriptedProvider(delay=30)
    worker = engine(pool, None, provider)
    task = asyncio.create_task(worker.run())
    while not provider.calls:
        await asyncio.sleep(0.01)
    worker.stop()
    worker.force()
    await asyncio.wait_for(task, 10)
    row = await pool.fetchrow("SELECT state, attempts, outcome_unknown FROM invoice_sync.outbox")
    assert dict(row) == {"state": "pending", "attempts": 1, "outcome_unknown": True}


async def test_rows_leased_ahead_are_not_sent_once_their_lease_is_nearly_over(
    pool: asyncpg.Pool,
) -> None:
    # One call at a time, 1.2 s each, two rows leased at once, a 2 s lease: the second row of
    # a claim would start its call 1.2 s after the claim, past its send-by (lease less half of
    # it, the request timeout being longer). It is given back unsent and claimed again.
    for i in range(3):
        await enqueue(pool, "shop", f"k{i}")
    sent_at: list[float] = []

    class Timed(ScriptedProvider):
        async def create_invoice(self, attempt: Attempt) -> Outcome:
            sent_at.append(time.monotonic())
            return await super().create_invoice(attempt)

    provider = Timed(delay=1.2)
    with capture_logs() as logs:
        await asyncio.wait_for(
            engine(pool, None, provider, concurrency=1, lease=2).run(drain=True), 30
        )
    assert await table_count(pool, "synced") == 3
    for attempt, at in zip(provider.calls, sent_at, strict=True):
        assert attempt.send_by is not None
        assert at <= attempt.send_by
    released = [e for e in logs if e["event"] == "invoice.released"]
    assert released, "no row waited past its send-by"
    assert all("lease ran out" in e["error"] for e in released)


async def test_a_claim_never_takes_more_than_batch_size_rows(pool: asyncpg.Pool) -> None:
    for i in range(12):
        await enqueue(pool, "shop", f"k{i}")
    asked: list[int] = []
    taken: list[int] = []

    class Counted(Outbox):
        async def outbox_claim(
            self, wants: Mapping[str, ClaimRequest], *, lease: float, probe_cooldown: float
        ) -> ClaimResult:
            result = await super().outbox_claim(wants, lease=lease, probe_cooldown=probe_cooldown)
            asked.append(sum(want.rows for want in wants.values()))
            taken.append(len(result.rows) + len(result.dead))
            return result

    # Ten calls at once would lease twenty rows ahead; batch_size caps every claim at three.
    worker = Engine(
        outbox=Counted(pool, worker_id="test"),
        runtimes={"shop": runtime(ScriptedProvider(), concurrency=10)},
        settings=fast_settings(batch_size=3),
        listen_dsn=None,
        rand=lambda: 1.0,
    )
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert await table_count(pool, "synced") == 12
    assert max(asked) == 3
    assert max(taken) == 3


class WalkCountingOutbox(Outbox):
    """The real store, counting the claims' `outbox_ready` walks."""

    walks = 0

    async def outbox_ready(
        self, *, after: str, steps: int, wanted: int, with_accounts: bool = False
    ) -> ReadyWalk:
        self.walks += 1
        return await super().outbox_ready(
            after=after, steps=steps, wanted=wanted, with_accounts=with_accounts
        )


async def drain_fleet(pool: asyncpg.Pool, accounts: int, rows: int) -> WalkCountingOutbox:
    names = [f"shop{n}" for n in range(accounts)]
    for name in names:
        for i in range(rows):
            await enqueue(pool, name, f"k{i}")
    outbox = WalkCountingOutbox(pool, worker_id="test")
    provider = ScriptedProvider()
    worker = Engine(
        outbox=outbox,
        runtimes={name: runtime(provider, name=name, concurrency=2) for name in names},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert await table_count(pool, "synced") == accounts * rows
    return outbox


async def test_a_small_fleet_is_claimed_from_without_the_ready_walk(pool: asyncpg.Pool) -> None:
    # Two accounts with room for 4 rows each fit in one claim of 100: the claim asks both, and
    # the round trip of the walk is saved on every claim.
    outbox = await drain_fleet(pool, accounts=2, rows=12)
    assert outbox.walks == 0


async def test_a_fleet_past_the_direct_claim_size_still_walks(pool: asyncpg.Pool) -> None:
    outbox = await drain_fleet(pool, accounts=DIRECT_CLAIM_ACCOUNTS + 1, rows=3)
    assert outbox.walks > 0


async def test_one_database_account_is_claimed_from_without_the_walk_once_it_is_open(
    pool: asyncpg.Pool,
) -> None:
    # The table's accounts are known only once opened: the first claim walks (and reads the
    # account), then the fleet knows every account there is, and claims directly.
    ring = Keyring(decode_key(new_key(), "secret_key"))
    await AccountWriter(pool, "ops@host").account_insert(
        AccountRow(
            name="shop", provider="billclap", options={"base_url": "http://127.0.0.1:9"},
            rate_limit="1000/second", concurrency=2, enabled=True,
            secret=ring.seal("shop", {"token": "shop_token_0123456"}),
        )
    )  # fmt: skip
    for i in range(12):
        await enqueue(pool, "shop", f"k{i}")
    provider = ScriptedProvider()
    fleet = Fleet(
        {},
        opener=lambda name, _checked: runtime(provider, name=name, concurrency=2),
        idle_timeout=300,
        max_open=10,
        loader=DatabaseLoader(pool, ring),
        table_size=1,
    )
    outbox = WalkCountingOutbox(pool, worker_id="test")
    worker = Engine(
        outbox=outbox, runtimes=fleet, settings=fast_settings(), listen_dsn=None, rand=lambda: 1.0
    )
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert await table_count(pool, "synced") == 12
    assert outbox.walks == 1


async def test_an_account_never_has_more_calls_at_once_than_its_concurrency(
    pool: asyncpg.Pool,
) -> None:
    for i in range(20):
        await enqueue(pool, "shop", f"k{i}")
    now = 0
    most = 0

    class Counting(ScriptedProvider):
        async def create_invoice(self, attempt: Attempt) -> Outcome:
            nonlocal now, most
            now += 1
            most = max(most, now)
            try:
                return await super().create_invoice(attempt)
            finally:
                now -= 1

    provider = Counting(delay=0.02)
    await asyncio.wait_for(engine(pool, None, provider, concurrency=3).run(drain=True), 20)
    assert await table_count(pool, "synced") == 20
    assert most == 3


async def test_rows_whose_calls_never_wait_are_run_by_one_runner_per_claim(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A provider that answers without waiting: the first runner runs the whole claim's rows
    # before any other could start, so no more runners are made for them (they cost a task
    # each and only found the line empty).
    for i in range(40):
        await enqueue(pool, "shop", f"k{i}")
    claims_with_rows = 0

    class Counted(Outbox):
        async def outbox_claim(
            self, wants: Mapping[str, ClaimRequest], *, lease: float, probe_cooldown: float
        ) -> ClaimResult:
            nonlocal claims_with_rows
            result = await super().outbox_claim(wants, lease=lease, probe_cooldown=probe_cooldown)
            claims_with_rows += bool(result.rows)
            return result

    runners = 0
    create_task = asyncio.create_task

    def counting(coro: Any, *, name: str | None = None, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal runners
        runners += bool(name and name.startswith("rows:"))
        return create_task(coro, name=name, **kwargs)

    monkeypatch.setattr(asyncio, "create_task", counting)
    worker = Engine(
        outbox=Counted(pool, worker_id="test"),
        runtimes={"shop": runtime(ScriptedProvider(), concurrency=8)},
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )
    await asyncio.wait_for(worker.run(drain=True), 20)
    assert await table_count(pool, "synced") == 40
    assert claims_with_rows >= 2  # the depth (16 rows) makes several claims
    assert runners == claims_with_rows


async def test_a_row_whose_attempt_crashes_is_given_back_and_the_others_still_run(
    pool: asyncpg.Pool,
) -> None:
    crashing = await enqueue(pool, "shop", "k0")
    await pool.execute(
        "UPDATE invoice_sync.outbox SET outcome_unknown = true WHERE id = $1", crashing
    )
    for i in range(1, 6):
        await enqueue(pool, "shop", f"k{i}")

    class Broken(ScriptedProvider):
        def retry_is_safe(self, invoice: object) -> bool:  # asked only of the row in doubt
            raise RuntimeError("bug")

    worker = engine(pool, None, Broken(), concurrency=1)
    with capture_logs() as logs:
        task = asyncio.create_task(worker.run())
        while await table_count(pool, "synced") < 5:
            await asyncio.sleep(0.02)
        worker.stop()
        await asyncio.wait_for(task, 10)
    crashes = [e for e in logs if e["event"] == "invoice.attempt_crashed"]
    assert crashes
    assert {e["outbox_id"] for e in crashes} == {crashing}
    row = await pool.fetchrow(
        "SELECT state, lease_owner, attempts FROM invoice_sync.outbox WHERE id = $1", crashing
    )
    assert dict(row) == {"state": "pending", "lease_owner": None, "attempts": 0}
