"""How deep an account leases ahead, against the real claim: deeper when its calls are fast,
twice its concurrency when they are slow; and a loop that goes round per claim, not per row."""

import asyncio
from collections.abc import Mapping

import asyncpg

from tests.factories import enqueue, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.engine.fleet import Fleet
from worker.engine.limits import AccountGate
from worker.engine.loop import Engine
from worker.store.outbox import ClaimRequest, ClaimResult, Outbox


class LeaseWatchingOutbox(Outbox):
    """The real store, noting for each claim how many rows the account will hold once it is
    served in full: those it holds already and those it asks for."""

    def __init__(self, pool: asyncpg.Pool, gate: AccountGate) -> None:
        super().__init__(pool, worker_id="test")
        self.gate = gate
        self.leased: list[int] = []

    async def outbox_claim(
        self, wants: Mapping[str, ClaimRequest], *, lease: float, probe_cooldown: float
    ) -> ClaimResult:
        self.leased.append(self.gate.inflight + sum(want.rows for want in wants.values()))
        return await super().outbox_claim(wants, lease=lease, probe_cooldown=probe_cooldown)


class TurnCountingFleet(Fleet):
    """Counts the loop's turns: each one asks the account's room."""

    turns = 0

    def room(self, name: str) -> int:
        self.turns += 1
        return super().room(name)


async def drain(
    pool: asyncpg.Pool, rows: int, *, concurrency: int, delay: float
) -> tuple[LeaseWatchingOutbox, TurnCountingFleet]:
    for i in range(rows):
        await enqueue(pool, "shop", f"k{i}")
    account = runtime(ScriptedProvider(delay=delay), concurrency=concurrency)
    outbox = LeaseWatchingOutbox(pool, account.gate)
    fleet = TurnCountingFleet.of({"shop": account})
    worker = Engine(
        outbox=outbox,
        runtimes=fleet,
        settings=fast_settings(),
        listen_dsn=None,
        rand=lambda: 1.0,
    )
    await asyncio.wait_for(worker.run(drain=True), 30)
    assert await table_count(pool, "synced") == rows
    return outbox, fleet


async def test_an_account_with_fast_calls_leases_more_than_twice_its_concurrency(
    pool: asyncpg.Pool,
) -> None:
    # Calls that answer at once finish many rows while a claim is out: the account leases
    # deeper, so the next claim goes out while rows are still there to run.
    outbox, _fleet = await drain(pool, 200, concurrency=1, delay=0)
    assert max(outbox.leased) > 2
    assert max(outbox.leased) <= 8  # eight times the concurrency at most


async def test_an_account_with_slow_calls_leases_twice_its_concurrency(
    pool: asyncpg.Pool,
) -> None:
    outbox, _fleet = await drain(pool, 12, concurrency=2, delay=0.1)
    assert max(outbox.leased) == 4


async def test_the_loop_goes_round_per_claim_not_per_finished_row(pool: asyncpg.Pool) -> None:
    # A claim waits until a quarter of the depth is free; rows finished before that change
    # nothing a claim could do, so they do not wake the loop (which went round about twice
    # per claim when every finished row woke it).
    outbox, fleet = await drain(pool, 600, concurrency=4, delay=0)
    claims = len(outbox.leased)
    assert fleet.turns <= 1.25 * claims + 5, (fleet.turns, claims)
