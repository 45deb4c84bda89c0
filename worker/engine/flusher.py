"""Collects finished attempts and writes them in batches: one ``outbox_record`` per flush.

A flush that cannot reach the database keeps its batch in memory and tries again, so results
of calls that already happened are not lost to a short outage.

A flush that raises anything else keeps its batch too, and the flushing loop is restarted with
backoff (``chores.Supervised``): the outcomes live in this object, not in the task, and
``outbox_record`` is one transaction fenced by the claim number, so writing a batch again is
harmless. A flusher that crashes ``give_up_after`` times in a row without one good flush is not
retried for ever: a worker that cannot write outcomes must not go on claiming and sending, so
its owner stops the worker, which exits non-zero for systemd or Kubernetes to restart it (the
rows still leased are rescued as unknown-outcome, the safe path).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

import structlog

from worker.claims import AccountAction, AttemptFacts, Claimed
from worker.engine.chores import Restarts, Supervised
from worker.errors import BackgroundTaskError, StoreError
from worker.outcome import Fate
from worker.policy import Decision, release
from worker.providers.calls import CREATE
from worker.store.database import StoreUnavailableError
from worker.store.outbox import Outbox, RecordSummary

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """One attempt, decided, waiting to be written."""

    row: Claimed
    decision: Decision
    provider: str
    duration: float
    """Seconds from the row's dispatch (waiting for a call slot and the rate limit included)."""
    started_at: datetime
    """When the row was dispatched, by the wall clock (the history's ``started_at``)."""
    calls: Sequence[Mapping[str, Any]] = ()
    """The provider requests the attempt made, as ``worker.providers.calls`` noted them."""

    def attempt_facts(self) -> AttemptFacts:
        """What the attempt history records beside the resolution: the create's status (a
        success carries none of its own), and every other request as ``calls``."""
        create_status, others = None, []
        for call in self.calls:
            if call["kind"] == CREATE:
                create_status = call["http_status"]
            else:
                others.append(call)
        action = self.decision.account_action
        return AttemptFacts(
            outcome=attempt_outcome(self.decision),
            provider=self.provider,
            started_at=self.started_at,
            duration_ms=round(self.duration * 1000),
            create_status=create_status,
            calls=others,
            reason=action.pause_reason if action is not None else None,
        )


# The history's outcome for each fate; a pause of the account, and a success found by a
# lookup or tag scan, have their own (``attempt_outcome``).
HISTORY_OUTCOMES = {
    Fate.SYNCED: "synced",
    Fate.RETRY_SCHEDULED: "retry",
    Fate.RATE_LIMITED: "rate_limited",
    Fate.DEAD_LETTERED: "dead_letter",
    Fate.RELEASED: "released",
    Fate.PROBE_FAILED: "paused",  # the probe found the account still broken: paused again
}


def attempt_outcome(decision: Decision) -> str:
    """The attempt history's ``outcome`` label for a decision."""
    action = decision.account_action
    if action is not None and action.pause_reason is not None:
        return "paused"
    if decision.fate is Fate.SYNCED and decision.resolution.recovered:
        return "recovered"
    return HISTORY_OUTCOMES[decision.fate]


Report = Callable[[Sequence[Finished], RecordSummary, Sequence[AccountAction], Sequence[str]], None]


class Written(NamedTuple):
    """A part of a batch as written, with what its report needs."""

    batch: Sequence[Finished]
    summary: RecordSummary
    actions: Sequence[AccountAction]
    resume: Sequence[str]


# Rows tried alone before a refused batch is taken for a fault of every row (none written).
ISOLATE_TRIES = 8
# A row whose outcome the database refused is tried again after this long (seconds).
REFUSED_DELAY = 300.0
# The database's error as kept in a row's history: one line, this long at most.
REFUSED_ERROR_LIMIT = 300


def one_line(text: str, limit: int = REFUSED_ERROR_LIMIT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "\u2026"


def _accounts_in_turn(batch: Sequence[Finished]) -> list[Finished]:
    """``batch`` reordered so the accounts take turns: one row of each, then the next."""
    lines: dict[str, list[Finished]] = {}
    for item in batch:
        lines.setdefault(item.row.account, []).append(item)
    return [
        item for turn in itertools.zip_longest(*lines.values()) for item in turn if item is not None
    ]


OUTAGE_BACKOFF_CAP = 5.0

# A crashed flushing loop runs again after 0.5, 1, 2, 4 and 8 s; the sixth crash in a row
# (some 15 s without a good flush) stops the worker.
FLUSHER_RESTARTS = Restarts(first=0.5, cap=8.0, give_up_after=6)


class Flusher:
    def __init__(
        self,
        outbox: Outbox,
        *,
        interval: float,
        report: Report,
        max_batch: int = 500,
        observe_flush: Callable[[float], None] | None = None,
        restarts: Restarts = FLUSHER_RESTARTS,
        on_give_up: Callable[[BackgroundTaskError], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._observe_flush = observe_flush
        self._interval = interval
        self._report = report
        self._max_batch = max_batch
        self._pending: list[Finished] = []
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._supervised = Supervised("flusher", self._run, restarts, on_give_up=on_give_up)
        self._closing = False

    @property
    def idle(self) -> bool:
        return not self._pending and not self._lock.locked()

    def add(self, item: Finished) -> None:
        self._pending.append(item)
        if len(self._pending) >= self._max_batch:
            self._kick.set()

    def start(self) -> None:
        self._supervised.start()

    async def close(self, *, attempts: int = 10) -> None:
        """Stop the periodic flush and write what is left, retrying a while if the database
        is down. Rows still unwritten after that are rescued from their leases later."""
        # Let the periodic loop finish the flush it may be in the middle of, rather than
        # cancelling it half-written.
        self._closing = True
        self._kick.set()
        await self._supervised.finish()
        for _ in range(attempts):
            if not self._pending:
                return
            if not await self._flush_at_close():
                await asyncio.sleep(1.0)
        if self._pending:
            log.error("flusher.abandoned", rows=len(self._pending))

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=self._interval)
            self._kick.clear()
            if await self.flush():
                failures = 0
                self._supervised.succeeded()
            elif not self._closing:
                # The database is away: try again soon (a failed connect is cheap), sooner when
                # kicked (the engine saw the database back, or the batch is full).
                failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout=outage_backoff(failures))

    def kick(self) -> None:
        """Flush now rather than at the next interval (e.g. the database is back)."""
        self._kick.set()

    async def flush(self) -> bool:
        """Write everything pending; False if the database could not take it (kept for later).

        A batch the database refuses (not a lost connection: an error of the statement) is
        written again a row at a time, so that one row whose outcome it cannot take (a value
        from a hostile provider past what a column or index holds) does not keep every other
        row's out, at every try, for ever. Each row refused while others were written is given
        back instead (``_give_back``). If no row can be written, the fault is the statement's,
        not a row's: the batch is kept, as when the database is away."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return True
            started = time.monotonic()
            try:
                written = [await self._write(batch)]
            except StoreUnavailableError as exc:
                return self._keep(batch, exc)
            except StoreError as exc:
                isolated = await self._isolate(batch)
                if isolated is None:
                    return self._keep(batch, exc)
                written = isolated
            except BaseException:
                # Nothing is lost to a cancellation or a crash: the restarted loop (or close)
                # writes the batch.
                self._pending = batch + self._pending
                raise
        if self._observe_flush is not None:
            self._observe_flush(time.monotonic() - started)
        for part in written:
            self._report(part.batch, part.summary, part.actions, part.resume)
        return True

    async def _isolate(self, batch: list[Finished]) -> list[Written] | None:
        """A refused ``batch`` a row at a time: the parts written (the refused rows given
        back among them), the rows not tried put back to pending; None if no row could be
        written (then nothing was)."""
        written: list[Written] = []
        try:
            refused, untried = await self._write_each(batch, written)
            if not written:
                return None
            self._pending = untried + self._pending
            for item, error in refused:
                given_back = await self._give_back(item, error)
                if given_back is not None:
                    written.append(given_back)
        except BaseException:
            # As a whole batch's: what is not written yet is written by the next flush.
            done = {id(f) for part in written for f in part.batch}
            self._pending = [f for f in batch if id(f) not in done] + self._pending
            raise
        return written

    def _keep(self, batch: list[Finished], exc: StoreError) -> bool:
        self._pending = batch + self._pending
        log.warning("flusher.failed", error=str(exc), rows=len(batch))
        return False

    async def _write(self, batch: Sequence[Finished]) -> Written:
        """One ``outbox_record`` of ``batch``, with the account changes its outcomes make."""
        actions = merge_account_actions(f.decision.account_action for f in batch)
        resume = sorted(
            {f.row.account for f in batch if f.row.probe and f.decision.resolution.kind == "synced"}
        )
        summary = await self._outbox.outbox_record(
            [f.decision.resolution for f in batch],
            attempts=[f.attempt_facts() for f in batch],
            account_actions=actions,
            resume=resume,
        )
        return Written(batch, summary, actions, resume)

    async def _write_each(
        self, batch: Sequence[Finished], written: list[Written]
    ) -> tuple[list[tuple[Finished, StoreError]], list[Finished]]:
        """``batch`` a row at a time, the accounts taking turns (a hostile provider's rows
        come together), each row written added to ``written``: (the rows refused, with the
        database's error; the rows not tried). Stops when the database is away (the rows
        refused so far are then tried again later too), or when ``ISOLATE_TRIES`` rows were
        refused before any was written (a fault of every row: trying 500 is no use)."""
        order = _accounts_in_turn(batch)
        refused: list[tuple[Finished, StoreError]] = []
        for n, item in enumerate(order):
            if not written and n >= ISOLATE_TRIES:
                return refused, order[n:]
            try:
                written.append(await self._write([item]))
            except StoreUnavailableError:
                return [], [item for item, _exc in refused] + order[n:]
            except StoreError as exc:
                refused.append((item, exc))
        return refused, []

    async def _give_back(self, item: Finished, error: StoreError) -> Written | None:
        """A row whose outcome the database refused: written as given back instead, its
        attempt spent and its outcome unknown (the call went out, and what it did is not on
        record), to be tried again after ``REFUSED_DELAY``, where the unknown-outcome rules
        (lookup, a number the provider refuses twice, or the dead letters) keep it from being
        created twice. None if that is refused too: the lease then runs out, and the rescue
        gives it back the same way."""
        reason = one_line(str(error))
        log.error(
            "flusher.outcome_refused",
            account=item.row.account,
            outbox_id=item.row.id,
            outcome=item.decision.resolution.kind,
            error=reason,
        )
        resolution = release(
            item.row,
            delay=REFUSED_DELAY,
            sent=True,
            error=f"the outcome could not be written ({reason}); the provider may have it",
        )
        given_back = replace(item, decision=Decision(resolution=resolution, fate=Fate.RELEASED))
        try:
            return await self._write([given_back])
        except StoreError as exc:
            # One line, as the first: the error is in it (no traceback to read).
            log.error(  # noqa: TRY400
                "flusher.outcome_refused",
                account=item.row.account,
                outbox_id=item.row.id,
                outcome="retry",
                error=one_line(str(exc)),
            )
            return None

    async def _flush_at_close(self) -> bool:
        """``flush()``, with a crash logged and counted as a failed try (the loop is over)."""
        try:
            return await self.flush()
        except Exception as exc:  # noqa: BLE001 - the shutdown goes on; the rows are rescued
            # One line, type and message, as chore.crashed: redaction sees the whole text.
            log.error("flusher.crashed", error_type=type(exc).__name__, error=str(exc))  # noqa: TRY400
            return False


def outage_backoff(failures: int) -> float:
    """Seconds before the next try while the database is unreachable: 0.5, 1, 2, 4, 5, 5, ...
    Short, because every second of it is a second of no progress once the database is back."""
    return min(0.25 * 2.0**failures, OUTAGE_BACKOFF_CAP)


def merge_account_actions(actions: Iterable[AccountAction | None]) -> list[AccountAction]:
    """At most one action per account: the first pause, and the longest throttle."""
    merged: dict[str, AccountAction] = {}
    for action in actions:
        if action is None:
            continue
        seen = merged.get(action.account)
        if seen is None:
            merged[action.account] = action
            continue
        throttle = max(seen.throttle or 0.0, action.throttle or 0.0) or None
        if seen.pause_reason is None and action.pause_reason is not None:
            seen = replace(action, throttle=seen.throttle)
        merged[action.account] = replace(seen, throttle=throttle)
    return list(merged.values())
