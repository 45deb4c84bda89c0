"""Many accounts: runtimes exist only for accounts with work, close when idle or beyond the
cap, and accounts take turns in the claim (real PostgreSQL, scripted provider)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.factories import enqueue, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.config import Settings
from worker.engine.fleet import Fleet
from worker.engine.loop import Engine
from worker.engine.runtimes import AccountRuntime, CheckedAccount, check_accounts
from worker.store.outbox import Outbox


class ClosingProvider(ScriptedProvider):
    def __init__(self, closed: list[str], name: str, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self._closed = closed
        self._name = name

    async def aclose(self) -> None:
        self._closed.append(self._name)


class Opener:
    """Builds scripted runtimes and remembers what it opened and what was closed."""

    def __init__(self, delay: float = 0.0) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.calls: list[str] = []
        self._delay = delay

    def __call__(self, name: str, checked: CheckedAccount) -> AccountRuntime:
        self.opened.append(name)
        provider = ClosingProvider(self.closed, name, delay=self._delay)
        provider.answer = self._answer(provider, name)
        return runtime(provider, name=name, concurrency=checked.settings.concurrency)

    def _answer(self, provider: ScriptedProvider, name: str):  # type: ignore[no-untyped-def]
        base = provider.answer

        def answer(attempt):  # type: ignore[no-untyped-def]
            self.calls.append(name)
            return base(attempt)

        return answer


def accounts(count: int, concurrency: int = 1) -> dict[str, CheckedAccount]:
    tables = {
        f"acct-{i:03d}": {
            "provider": "billclap",
            "base_url": "http://127.0.0.1:9",
            "token": "fleet-token-1",
            "concurrency": concurrency,
            "rate_limit": "1000/second",
        }
        for i in range(count)
    }
    return check_accounts(Settings.model_validate({"accounts": tables}))


def engine(pool: asyncpg.Pool, fleet: Fleet, **settings: object) -> Engine:
    return Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes=fleet,
        settings=fast_settings(**settings),
        listen_dsn=None,
        rand=lambda: 1.0,
    )


async def test_only_accounts_with_rows_get_a_runtime(pool: asyncpg.Pool) -> None:
    opener = Opener()
    fleet = Fleet(accounts(200), opener=opener, idle_timeout=300, max_open=500)
    for i in (3, 50, 199):
        await enqueue(pool, f"acct-{i:03d}", "k")
    await asyncio.wait_for(engine(pool, fleet).run(drain=True), 20)
    assert sorted(opener.opened) == ["acct-003", "acct-050", "acct-199"]
    assert await table_count(pool, "synced") == 3
    assert sorted(opener.closed) == sorted(opener.opened)  # shut down: every adapter closed


async def test_idle_runtimes_close_and_open_runtimes_stay_under_the_cap(
    pool: asyncpg.Pool,
) -> None:
    opener = Opener()
    fleet = Fleet(accounts(40), opener=opener, idle_timeout=300, max_open=3)
    for i in range(40):
        for k in range(2):
            await enqueue(pool, f"acct-{i:03d}", f"k{k}")
    await asyncio.wait_for(engine(pool, fleet, batch_size=4).run(drain=True), 30)
    assert await table_count(pool, "synced") == 80
    assert await table_count(pool, "outbox") == 0
    assert len(set(opener.opened)) == 40
    # Beyond the cap, idle runtimes were closed while the drain went on, not only at the end.
    assert fleet.open_count() <= 3 + 4

    idle = Opener()
    fleet = Fleet(accounts(5), opener=idle, idle_timeout=0, max_open=500)
    await enqueue(pool, "acct-001", "late")
    await asyncio.wait_for(engine(pool, fleet).run(drain=True), 20)
    assert idle.opened == ["acct-001"]
    assert fleet.open_count() == 0  # idle at once: closed at the next claim


async def test_accounts_with_one_row_are_not_stuck_behind_a_large_backlog(
    pool: asyncpg.Pool,
) -> None:
    opener = Opener(delay=0.005)
    checked = accounts(21, concurrency=4)
    fleet = Fleet(checked, opener=opener, idle_timeout=300, max_open=500)
    # acct-000 sorts first and has 200 rows; twenty others have one each.
    for k in range(200):
        await enqueue(pool, "acct-000", f"big-{k}")
    for i in range(1, 21):
        await enqueue(pool, f"acct-{i:03d}", "small")
    await asyncio.wait_for(engine(pool, fleet, batch_size=8, max_in_flight=2).run(drain=True), 60)
    assert await table_count(pool, "synced") == 220
    first = opener.calls[:60]
    assert all(f"acct-{i:03d}" in first for i in range(1, 21)), first
