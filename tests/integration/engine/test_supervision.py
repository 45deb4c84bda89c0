"""The worker's background tasks (lease rescue, flusher, listener) survive an unexpected
exception: it is logged, the task runs again after a backoff, and nothing queued is lost. A
flusher that keeps crashing stops the worker with one clear error instead of running on."""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.factories import enqueue, table_count
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.claims import Resolution
from worker.engine.chores import Restarts
from worker.engine.flusher import FLUSHER_RESTARTS
from worker.engine.listener import Listener
from worker.engine.loop import Engine
from worker.errors import BackgroundTaskError
from worker.store.outbox import Outbox, RecordSummary


class FlakyOutbox(Outbox):
    """The real store, with a programming error injected into its first calls."""

    def __init__(self, pool: asyncpg.Pool, *, record_crashes: int = 0, rescue_crashes: int = 0):
        super().__init__(pool, worker_id="flaky")
        self.record_crashes = record_crashes
        self.rescue_crashes = rescue_crashes
        self.rescues = 0

    async def outbox_record(
        self, resolutions: Sequence[Resolution], **kwargs: object
    ) -> RecordSummary:
        if self.record_crashes:
            self.record_crashes -= 1
            raise RuntimeError("record blew up")
        return await super().outbox_record(resolutions, **kwargs)  # type: ignore[arg-type]

    async def outbox_rescue(self, limit: int = 1000) -> list[int]:
        self.rescues += 1
        if self.rescue_crashes:
            self.rescue_crashes -= 1
            raise KeyError("rescue blew up")
        return await super().outbox_rescue(limit)


def engine(
    outbox: Outbox,
    provider: ScriptedProvider,
    restarts: Restarts = FLUSHER_RESTARTS,
    **settings: object,
) -> Engine:
    return Engine(
        outbox=outbox,
        runtimes={"shop": runtime(provider)},
        settings=fast_settings(**settings),
        listen_dsn=None,
        rand=lambda: 1.0,
        flusher_restarts=restarts,
    )


def crashes(logs: Sequence[Mapping[str, Any]], chore: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == "chore.crashed" and e["chore"] == chore]


async def test_a_crashed_flush_keeps_its_outcomes_and_the_flusher_writes_them(
    pool: asyncpg.Pool,
) -> None:
    for i in range(10):
        await enqueue(pool, "shop", f"k{i}")
    provider = ScriptedProvider()
    outbox = FlakyOutbox(pool, record_crashes=2)
    fast = Restarts(first=0.05, cap=0.2, give_up_after=5)
    with capture_logs() as logs:
        await asyncio.wait_for(engine(outbox, provider, fast).run(drain=True), 20)
    assert await table_count(pool, "synced") == 10
    assert len(provider.calls) == 10  # every outcome kept: no row was sent twice
    assert [e["error"] for e in crashes(logs, "flusher")] == ["record blew up"] * 2
    assert any(e["event"] == "chore.recovered" and e["chore"] == "flusher" for e in logs)


async def test_a_flusher_that_keeps_crashing_stops_the_worker_with_one_error(
    pool: asyncpg.Pool,
) -> None:
    for i in range(3):
        await enqueue(pool, "shop", f"k{i}")
    outbox = FlakyOutbox(pool, record_crashes=10**6)
    worker = engine(outbox, ScriptedProvider(), Restarts(first=0.05, cap=0.1, give_up_after=3))
    with capture_logs() as logs, pytest.raises(BackgroundTaskError) as raised:
        await asyncio.wait_for(worker.run(), 20)
    assert str(raised.value) == (
        "the flusher crashed 3 times in a row (last: RuntimeError, see chore.gave_up in the "
        "log); stopping so that the service manager restarts the worker"
    )
    assert len(crashes(logs, "flusher")) == 2
    [gave_up] = [e for e in logs if e["event"] == "chore.gave_up"]
    assert (gave_up["chore"], gave_up["error"]) == ("flusher", "record blew up")
    # Nothing is lost: the rows stay in the outbox, leased, for the lease rescue to give back.
    assert await table_count(pool, "outbox") == 3
    assert await table_count(pool, "synced") == 0


async def test_the_lease_rescue_runs_again_after_crashing(pool: asyncpg.Pool) -> None:
    await enqueue(pool, "shop", "k1")
    # A worker that died holding the row: its lease runs out and only a rescue frees it.
    dead = await Outbox(pool, worker_id="dead").outbox_claim(
        {"shop": runtime(ScriptedProvider()).gate.claim_request(1)}, lease=0.3, probe_cooldown=60
    )
    assert len(dead.rows) == 1
    outbox = FlakyOutbox(pool, rescue_crashes=2)
    provider = ScriptedProvider()
    with capture_logs() as logs:
        await asyncio.wait_for(engine(outbox, provider, lease=1).run(drain=True), 20)
    assert await table_count(pool, "synced") == 1
    assert outbox.rescues >= 3
    assert [e["error_type"] for e in crashes(logs, "lease_rescue")] == ["KeyError"] * 2
    assert any(e["event"] == "lease.rescued" for e in logs)


async def test_the_listener_listens_again_after_crashing(dsn: str, pool: asyncpg.Pool) -> None:
    class Flaky(Listener):
        connects = 0

        async def _listen_until_lost(self) -> None:
            self.connects += 1
            if self.connects == 1:
                raise RuntimeError("listener blew up")
            await super()._listen_until_lost()

    wake = asyncio.Event()
    listener = Flaky(dsn, wake)
    with capture_logs() as logs:
        listener.start()
        await asyncio.wait_for(wake.wait(), 10)  # set once it listens, for rows that came before
        wake.clear()
        await enqueue(pool, "shop", "k1")
        await asyncio.wait_for(wake.wait(), 10)  # a NOTIFY
        await listener.stop()
    assert [e["error"] for e in crashes(logs, "listener")] == ["listener blew up"]
