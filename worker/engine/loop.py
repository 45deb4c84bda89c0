"""The loop: wake up, claim, dispatch, and shut down gracefully. No SQL here (the store has it),
no HTTP (the adapters have it).

Each claimed row waits in its account's line until one of the account's runners (at most its
concurrency of them: tasks that run the line's rows one after another until it is empty) runs
it under the account's rate limit; the finished attempts go to the flusher, which writes them
in batches. On ``stop()`` the engine stops claiming, gives back rows whose call has not
started, lets started calls finish within the grace period, writes every outcome and returns.
``force()`` (a second signal) cuts the grace short; rows cut off mid-call are released as
unknown-outcome, so another worker takes the safe path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import structlog

from worker import tracing
from worker.claims import AccountAction, Claimed
from worker.config import WorkerSettings
from worker.engine.attempt import Attempter
from worker.engine.chores import PeriodicChore, Restarts
from worker.engine.events import report
from worker.engine.fleet import Fleet, TableChange
from worker.engine.flusher import FLUSHER_RESTARTS, Finished, Flusher, outage_backoff
from worker.engine.holds import AccountHolds
from worker.engine.limits import AccountGate, leased_room, share_claim
from worker.engine.listener import Listener
from worker.engine.metrics import Metrics, MetricsRefresher
from worker.engine.runtimes import AccountRuntime
from worker.engine.slots import Slots
from worker.errors import BackgroundTaskError, ConfigError
from worker.outcome import Fate, Reason
from worker.policy import Decision, release
from worker.providers import calls
from worker.store.database import StoreUnavailableError
from worker.store.outbox import DeadAtClaim, FinishedAtClaim, Outbox, RecordSummary

log = structlog.get_logger(__name__)

# The attempt history is pruned this often, in batches of PRUNE_BATCH rows with PRUNE_PAUSE
# seconds between them: short statements that never hold up the flush for long.
PRUNE_EVERY = 3600.0
PRUNE_BATCH = 5000
PRUNE_PAUSE = 0.5

# `worker.started` lists the config file's accounts by name up to this many, else gives their
# count (and the table's accounts, by count: a replica does not read their names).
STARTED_NAMES = 50
# How often the gauges that need a query (pending rows, dead letters, pauses) are refreshed.
METRICS_EVERY = 10.0
# The most accounts one `outbox_ready` walk visits: bounds a claim's cost when many accounts
# have rows that are not due yet (scheduled retries) or are paused.
READY_STEPS = 1000
# A fleet of at most this many accounts (the config file's and the table's enabled ones) whose
# room fits in one claim is claimed from directly, without the walk (``Engine._direct_rooms``).
# Small, so the rooms are cheap to add up each time.
DIRECT_CLAIM_ACCOUNTS = 8


@dataclass(kw_only=True, slots=True)
class _InFlight:
    row: Claimed
    runtime: AccountRuntime
    started: float
    lease_ends: float
    """When the lease may end, by this clock: counted from the claim's start, which is before
    the database's ``now()`` that its expiry is counted from."""
    started_at: datetime
    """``started`` by the wall clock, for the attempt history."""
    sent: bool = False
    recorded: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)
    """The provider requests the attempt made (``worker.providers.calls``)."""


class Engine:
    def __init__(
        self,
        *,
        outbox: Outbox,
        runtimes: Fleet | Mapping[str, AccountRuntime],
        settings: WorkerSettings,
        listen_dsn: str | None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
        refresher: MetricsRefresher | None = None,
        flusher_restarts: Restarts = FLUSHER_RESTARTS,
    ) -> None:
        self._outbox = outbox
        self._metrics = metrics
        self._fleet = runtimes if isinstance(runtimes, Fleet) else Fleet.of(runtimes)
        self._settings = settings
        self._clock = clock
        self._now = now
        self._attempter = Attempter(
            settings,
            rand,
            observe_call=metrics.observe_call if metrics else None,
            clock=clock,
            calls=Slots(settings.max_in_flight),
        )
        # Where the next `outbox_ready` walk starts: after the last account served, so
        # accounts take turns however many have work.
        self._turn = ""
        # Runtimes out of service (idle, or changed by a reload) still running rows: their
        # adapters close once those rows finish.
        self._retiring: list[AccountRuntime] = []
        # A reload's findings, taken in at the start of the next claim: between claims, so a
        # row is never claimed for an account the fleet no longer has.
        self._replacement: TableChange | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._forced = False
        self._failure: BackgroundTaskError | None = None
        # The rows held (leased, not finished), each account's line of rows not started yet,
        # and the runners working each line, with the row each one runs. A runner per row,
        # rather than a task per row, as a task cost more than the rest of a row's dispatch.
        self._held = 0
        self._lines: dict[str, deque[_InFlight]] = {}
        self._runners: dict[str, set[asyncio.Task[None]]] = {}
        self._running: dict[asyncio.Task[None], _InFlight | None] = {}
        # Accounts whose line is to be given more runners at the loop's next turn (``_staff``).
        self._staffing: set[str] = set()
        self._holds = AccountHolds(clock)
        self._flusher = Flusher(
            outbox,
            interval=settings.flush_interval,
            report=self._report,
            observe_flush=metrics.flush_seconds.observe if metrics else None,
            restarts=flusher_restarts,
            on_give_up=self._fail,
        )
        self._listener = Listener(listen_dsn, self._wake) if listen_dsn else None
        rescue_every = max(min(settings.lease / 4, 30.0), 0.2)
        self._rescue = PeriodicChore("lease_rescue", rescue_every, self._rescue_expired)
        prune = PeriodicChore("attempt_prune", PRUNE_EVERY, self._prune_attempts, at_start=True)
        self._chores = [self._rescue, prune]
        if refresher is not None:
            self._chores.append(
                PeriodicChore("metrics", METRICS_EVERY, refresher.refresh, at_start=True)
            )
        self._heartbeat = clock()
        self._claims = 0

    def heartbeat_age(self) -> float:
        """Seconds since the loop last went round (``/healthz``)."""
        return self._clock() - self._heartbeat

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Begin a graceful shutdown (first SIGTERM/SIGINT)."""
        if not self._stopping.is_set():
            log.info("worker.stopping", in_flight=self._held)
        self._stopping.set()
        self._wake.set()

    def force(self) -> None:
        """Cut the grace period short (second signal)."""
        self._forced = True
        self.stop()
        for task in self._running:
            task.cancel()

    def replace_accounts(self, change: TableChange) -> None:
        """Take in a reload's ``change`` from the next claim on: a removed or disabled account
        is no longer claimed, a changed one gets a new runtime, and rows in flight finish on
        the runtime they started with, which closes after them."""
        before = self._replacement
        if before is not None:
            # Two reloads before a claim: the later one's versions win, neither's are lost.
            change = TableChange({**before.versions, **change.versions}, change.enabled)
        self._replacement = change
        self._wake.set()

    def _fail(self, failure: BackgroundTaskError) -> None:
        """A task the worker cannot run without gave up: shut down, then ``run`` raises."""
        log.error("worker.failing", error=str(failure))
        self._failure = failure
        self.stop()

    async def run(self, *, drain: bool = False) -> None:
        """Work until stopped (or drained); raises ``BackgroundTaskError`` if the flusher gave up,
        after the same graceful shutdown as a signal's."""
        names = self._fleet.file_names()
        log.info(
            "worker.started",
            worker_id=self._outbox.worker_id,
            # Named in full up to a point: a fleet of thousands would make one huge line.
            accounts=sorted(names) if len(names) <= STARTED_NAMES else len(names),
            database=self._fleet.table_size(),
        )
        if self._listener is not None:
            self._listener.start()
        self._flusher.start()
        for chore in self._chores:
            chore.start()
        try:
            await self._loop(drain=drain)
        finally:
            await self._shutdown()
        if self._failure is not None:
            raise self._failure

    async def _loop(self, *, drain: bool) -> None:
        unavailable = 0
        while not self._stopping.is_set():
            self._heartbeat = self._clock()
            try:
                claimed, wanted, more = await self._claim()
                if unavailable:
                    log.info("store.available", after_failures=unavailable)
                    self._flusher.kick()  # outcomes kept through the outage go in now
                    if self._metrics is not None:
                        self._metrics.database_up.set(1)
                unavailable = 0
                if (claimed and claimed == wanted) or more:
                    continue  # got all it asked for, or walked only part of the accounts
                if drain and await self._drained():
                    return
            except StoreUnavailableError as exc:
                unavailable += 1
                log.warning("store.unavailable", error=str(exc))
                if self._metrics is not None:
                    self._metrics.database_up.set(0)
                await self._sleep(outage_backoff(unavailable))
                continue
            await self._sleep(self._next_wake())

    def _next_wake(self) -> float:
        """The poll interval, or sooner when a held account's hold ends (a token is due)."""
        soonest = self._holds.next_end(self._clock())
        poll = self._settings.poll_interval
        return max(poll if soonest is None else min(poll, soonest), 0.001)

    async def _claim(self) -> tuple[int, int, bool]:
        """(rows claimed, rows asked for, whether accounts are left to look at right away)."""
        if self._replacement is not None:
            self._retiring.extend(self._fleet.replace(self._replacement))
            self._replacement = None
        await self._retire()
        now = self._clock()
        limit = min(self._settings.batch_size, self._room())
        if not limit:
            return 0, 0, False
        direct = self._direct_rooms(now, limit)
        if direct is not None:
            return await self._claim_rooms(direct, now, cut_short=False)
        walk = await self._outbox.outbox_ready(
            after=self._turn,
            steps=READY_STEPS,
            wanted=limit,
            with_accounts=self._fleet.reads_table(),
        )
        claimable = [name for name in walk.ready if self._holds.claimable(name, now)]
        # Database accounts the fleet does not know yet are read and opened now, from the rows
        # the walk brought (no round trip of their own): their room and rate are theirs, not a
        # guess.
        await self._fleet.prepare(claimable, walk.accounts)
        rooms = {
            name: free
            for name in claimable
            if name in self._fleet and (free := self._fleet.room(name))
        }
        # share_claim goes round the names in order from its turn-th: the walk's order.
        turn = sum(1 for name in rooms if name <= self._turn)
        shares = share_claim(rooms, limit, turn=turn)
        served = [name for name in walk.walked if name in shares]
        if served:
            self._turn = served[-1]
        elif walk.cut_short:
            self._turn = walk.walked[-1]
        return await self._claim_rooms(shares, now, cut_short=walk.cut_short)

    def _direct_rooms(self, now: float, limit: int) -> dict[str, int] | None:
        """The rows to ask of each account when the fleet is small and all of its room fits in
        one claim: then the ``outbox_ready`` walk could only confirm what the claim finds out
        anyway (``outbox_claim`` passes over accounts that are paused, throttled or have
        nothing due), at one more round trip per claim, which with a fast provider is most of
        what bounds the rows claimed per second. None when the walk is needed: more accounts,
        or an enabled database account without a runtime (the walk's path reads and opens it,
        ``Fleet.prepare``; until then the fleet does not know its name)."""
        names = self._fleet.every_account(DIRECT_CLAIM_ACCOUNTS)
        if names is None:
            return None
        rooms = {
            name: free
            for name in names
            if self._holds.claimable(name, now) and (free := self._fleet.room(name))
        }
        return rooms if sum(rooms.values()) <= limit else None

    async def _claim_rooms(
        self, shares: Mapping[str, int], now: float, *, cut_short: bool
    ) -> tuple[int, int, bool]:
        """Claim ``shares`` (rows per account): (rows claimed, rows asked for, ``cut_short``)."""
        if not shares:
            if self._metrics is not None:
                self._metrics.claim_seconds.observe(self._clock() - now)
            return 0, 0, cut_short
        wants = {name: self._fleet.claim_request(name, n) for name, n in shares.items()}
        wanted = sum(w.rows for w in wants.values())
        result = await self._outbox.outbox_claim(
            wants, lease=self._settings.lease, probe_cooldown=self._settings.pause_cooldown
        )
        seconds = self._clock() - now
        if self._metrics is not None:
            self._metrics.claim_seconds.observe(seconds)
            self._metrics.observe_token_waits(result.token_waits)
        self._report_dead_at_claim(result.dead)
        self._report_finished_at_claim(result.finished)
        for account, wait in result.token_waits.items():
            # The shared bucket is empty: come back when its next token is due, not sooner.
            # Counted from the answer, not the claim's start: a claim slower than the wait
            # would otherwise leave a hold already over, and the loop sleeping a whole poll.
            self._holds.hold(account, wait)
        # The claim's rows are dispatched together: one reading of each clock serves them all.
        lease_ends = now + self._settings.lease
        dispatched, dispatched_at = self._clock(), self._now()
        for row in result.rows:
            self._holds.claimed(row, claim_started=now)
            self._dispatch(row, lease_ends=lease_ends, at=dispatched, at_wall=dispatched_at)
        # After the dispatch, so an account this claim opened has its gate to tell.
        self._fleet.claimed(shares, seconds)
        gone = len(result.dead) + len(result.finished)
        return len(result.rows) + gone, wanted, cut_short

    def _room(self, held: int | None = None) -> int:
        """Rows this process may lease now (when it holds ``held``, by default its rows in
        flight), all accounts together: twice ``max_in_flight``, as an account leases at least
        twice its concurrency (``AccountGate``)."""
        held = self._held if held is None else held
        return leased_room(2 * self._settings.max_in_flight, held)

    async def _retire(self) -> None:
        """Close the adapters of accounts idle too long (or beyond ``max_open_accounts``) and
        of runtimes a reload replaced, once their rows in flight have finished."""
        self._retiring.extend(self._fleet.retire())
        if not self._retiring:
            return
        busy = []
        for runtime in self._retiring:
            if runtime.gate.inflight:
                busy.append(runtime)
            else:
                await runtime.provider.aclose()
        self._retiring = busy

    def _report_dead_at_claim(self, rows: Sequence[DeadAtClaim]) -> None:
        """Rows too large to read, which the claim itself moved to the dead letters."""
        for dead in rows:
            log.warning(
                Fate.DEAD_LETTERED.event,
                account=dead.account,
                outbox_id=dead.id,
                idempotency_key=dead.idempotency_key,
                reason=Reason.INVALID_PAYLOAD.value,
                error=dead.error,
            )
            if self._metrics is not None:
                account = self._metrics.account_label(dead.account)
                self._metrics.invoices.labels(
                    account, Fate.DEAD_LETTERED.label, Reason.INVALID_PAYLOAD.value
                ).inc()

    def _report_finished_at_claim(self, rows: Sequence[FinishedAtClaim]) -> None:
        """Rows whose key was already synced, cancelled or held by an open dead letter whose
        outcome is unknown, which the claim deleted unsent."""
        for row in rows:
            log.warning(
                "invoice.already_finished",
                account=row.account,
                outbox_id=row.id,
                idempotency_key=row.idempotency_key,
                state=row.state,
            )

    def _dispatch(self, row: Claimed, *, lease_ends: float, at: float, at_wall: datetime) -> None:
        """Put ``row`` in its account's line, dispatched ``at`` (by ``clock``; ``at_wall`` by
        the wall clock, for the attempt history)."""
        try:
            runtime = self._fleet.runtime(row.account)
        except ConfigError as exc:
            self._unusable(row, exc)
            return
        runtime.gate.take()
        flight = _InFlight(
            row=row, runtime=runtime, started=at, started_at=at_wall, lease_ends=lease_ends
        )
        self._held += 1
        line = self._lines.get(row.account)
        if line is None:
            line = self._lines[row.account] = deque()
        line.append(flight)
        runners = self._runners.setdefault(row.account, set())
        if not runners:
            self._start_runner(row.account, runners)
        concurrency = runtime.gate.concurrency
        if len(runners) < concurrency and row.account not in self._staffing:
            # The other runners once the first have had their turn, and only if rows are left
            # then: when calls answer without waiting (a fast provider, a quick failure), one
            # runner runs a whole claim's rows in one go, and the rest of a runner per call
            # slot only found the line empty, a task each (15 of 16 per claim).
            self._staffing.add(row.account)
            asyncio.get_running_loop().call_soon(self._staff, row.account, concurrency)

    def _staff(self, account: str, concurrency: int) -> None:
        """Up to ``concurrency`` runners for the account's line, one per row still in it."""
        self._staffing.discard(account)
        line = self._lines.get(account)
        if not line:
            return
        runners = self._runners.setdefault(account, set())
        for _ in range(min(concurrency - len(runners), len(line))):
            self._start_runner(account, runners)

    def _start_runner(self, account: str, runners: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(self._run_line(account), name=f"rows:{account}")
        runners.add(task)
        self._running[task] = None
        task.add_done_callback(functools.partial(self._runner_done, account))

    async def _run_line(self, account: str) -> None:
        """Run the rows of an account's line one after the other until it is empty."""
        task = cast("asyncio.Task[None]", asyncio.current_task())
        line = self._lines[account]
        try:
            while line:
                flight = line.popleft()
                self._running[task] = flight
                try:
                    await self._process(flight)
                except Exception as exc:  # noqa: BLE001 - one row's crash is that row's
                    # One line, as when each row had its task: the error is in it.
                    log.error("invoice.attempt_crashed", outbox_id=flight.row.id, error=repr(exc))  # noqa: TRY400
                finally:
                    self._running[task] = None
                    self._finished(flight)
        finally:
            # In the step that found the line empty: a row dispatched after it gets a runner.
            self._runner_gone(account, task)

    def _runner_done(self, account: str, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        # Again for a runner cancelled before it started (shutdown): its finally never ran.
        self._runner_gone(account, task)

    def _runner_gone(self, account: str, task: asyncio.Task[None]) -> None:
        runners = self._runners.get(account)
        if runners is None:
            return
        runners.discard(task)
        if not runners and not self._lines.get(account):
            # Nothing left for the account: no line or runner set kept for an idle one.
            del self._runners[account]
            self._lines.pop(account, None)

    def _unusable(self, row: Claimed, exc: ConfigError) -> None:
        """The account's runtime cannot be built (its token file is gone since start, say):
        the row goes back unsent and the account waits a poll before it is tried again."""
        log.error("account.unusable", account=row.account, error=str(exc))
        self._holds.hold(row.account, self._settings.poll_interval)
        resolution = release(row, error=f"account unusable: {exc}")
        self._flusher.add(
            Finished(
                row=row,
                decision=Decision(resolution=resolution, fate=Fate.RELEASED),
                provider=self._fleet.provider_name(row.account),
                duration=0.0,
                started_at=self._now(),
            )
        )

    def _finished(self, flight: _InFlight) -> None:
        self._held -= 1
        gate = flight.runtime.gate
        gate.give()
        self._fleet.touch(flight.row.account)
        if not flight.recorded:
            # Cancelled (shutdown) or crashed before the attempt decided, possibly before it
            # started: give the row back now rather than leave it to its lease.
            self._record(flight, self._cut_short(flight))
        if self._worth_a_turn(gate):
            self._wake.set()

    def _worth_a_turn(self, gate: AccountGate) -> bool:
        """Whether a row just finished on ``gate`` should wake the loop: when a claim could
        now lease rows (its account has room for a claim, or the process has room again), or
        nothing is in flight any more (a drain may be over). Not for every row: until a
        quarter of the depth is free a claim takes nothing, and the loop going round for each
        row finished only cost it CPU."""
        if not self._held:
            return True
        if not self._room():
            return False
        return bool(gate.free()) or not self._room(self._held + 1)

    async def _process(self, flight: _InFlight) -> None:
        def mark_sent() -> None:
            flight.sent = True

        # The span is current while the provider is called: its HTTP spans become children.
        with (
            calls.recording() as made,
            tracing.attempt_span(flight.row, flight.runtime.provider_name) as span,
        ):
            # The list, not a copy: a cancelled attempt is recorded with what it made so far.
            flight.calls = made
            decision = await self._attempter.attempt(
                flight.row, flight.runtime, mark_sent, lease_ends=flight.lease_ends
            )
            decision = self._holds.once_per_pause(decision, flight.row)
            decision = self._holds.breaker(decision, flight.runtime)
            span.record(decision)
        self._record(flight, decision)

    def _cut_short(self, flight: _InFlight) -> Decision:
        error = "cut short by shutdown" if flight.sent else None
        resolution = release(flight.row, sent=flight.sent, error=error)
        return Decision(resolution=resolution, fate=Fate.RELEASED)

    def _record(self, flight: _InFlight, decision: Decision) -> None:
        flight.recorded = True
        self._flusher.add(
            Finished(
                row=flight.row,
                decision=decision,
                provider=flight.runtime.provider_name,
                duration=self._clock() - flight.started,
                started_at=flight.started_at,
                calls=flight.calls,
            )
        )

    def _report(
        self,
        batch: Sequence[Finished],
        summary: RecordSummary,
        actions: Sequence[AccountAction],
        resumed: Sequence[str],
    ) -> None:
        report(batch, summary, actions, resumed)
        if self._metrics is not None:
            self._metrics.observe_batch(batch, summary)
        self._holds.written(actions, resumed)

    async def _drained(self) -> bool:
        if self._held or not self._flusher.idle:
            return False
        unfinished, held = await self._outbox.outbox_unfinished(self._fleet.worked())
        if unfinished:
            return False
        if held:
            log.warning("worker.drain_left_paused", rows=held)
        return True

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: this runs at every turn of the loop, and wait_for
        # wraps the wait in a task of its own (before Python 3.12).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _rescue_expired(self) -> None:
        rescued = await self._outbox.outbox_rescue()
        if rescued:
            log.warning("lease.rescued", rows=len(rescued), outbox_ids=rescued[:20])
            if self._metrics is not None:
                self._metrics.leases_reclaimed.inc(len(rescued))
            self._wake.set()

    async def _prune_attempts(self) -> None:
        total = await prune_attempts(self._outbox, self._settings.attempt_retention)
        if total:
            log.info("attempts.pruned", rows=total)

    def _give_back_unsent(self) -> None:
        """Rows not started, or still waiting for a call slot or a rate-limit permit, have not
        been sent: give them back now."""
        for line in self._lines.values():
            while line:
                self._finished(line.popleft())
        for task, running in list(self._running.items()):
            if running is None or not running.sent:
                task.cancel()

    async def _shutdown(self) -> None:
        self._give_back_unsent()
        if self._running:
            grace = 0.0 if self._forced else self._settings.shutdown_grace
            _done, late = await asyncio.wait(list(self._running), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        for chore in self._chores:
            await chore.stop()
        if self._listener is not None:
            await self._listener.stop()
        # A flusher that gave up is not waited for long: its batch is what keeps crashing.
        hurry = self._forced or self._failure is not None
        await self._flusher.close(attempts=2 if hurry else 10)
        for runtime in [*self._fleet.open_runtimes(), *self._retiring]:
            await runtime.provider.aclose()
        log.info("worker.stopped", worker_id=self._outbox.worker_id)


async def prune_attempts(
    outbox: Outbox, retention: float, *, batch: int = PRUNE_BATCH, pause: float = PRUNE_PAUSE
) -> int:
    """Prune attempt rows older than ``retention`` seconds, ``batch`` at a time until a batch
    comes back short; how many went."""
    total = 0
    while True:
        deleted = await outbox.attempt_prune(retention, batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(pause)
