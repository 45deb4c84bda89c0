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
from worker.policy import Decision
from worker.providers.calls import CREATE
from worker.store.database import StoreRefusedError
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


# Rows tried alone before a batch refused for a value is taken for a fault of every row.
ISOLATE_TRIES = 8
# Rows refused even reduced are tried again, alone, this often (seconds), so many at a time.
HELD_BACK_RETRY = 5.0
HELD_BACK_TRIES = 8


def reduced(item: Finished, brief: str, *, texts: bool) -> Finished:
    """``item`` without the provider's answer, link and PDF address, and with ``texts`` its
    error and pause messages replaced by a note too, keeping its outcome: the kind, the
    provider's ids, the status, the delay, the account changes. What is written of an outcome
    the database refused as it came (``brief`` says why, without quoting the refused value)."""
    note = f"the provider's answer could not be stored as it came ({brief}); its texts are left out"
    resolution = item.decision.resolution
    action = item.decision.account_action
    error = resolution.error if resolution.error is None or not texts else note
    if action is not None and texts and action.pause_error is not None:
        action = replace(action, pause_error=note)
    decision = replace(
        item.decision,
        resolution=replace(resolution, response=None, link=None, pdf_url=None, error=error),
        account_action=action,
    )
    return replace(item, decision=decision)


def isolation_order(batch: Sequence[Finished], turn: int = 0) -> list[Finished]:
    """``batch`` in the order ``_isolate`` tries it: the accounts taking turns (one row of
    each, then the next), and the first ``ISOLATE_TRIES`` rows chosen so that refused rows
    that came together (a hostile provider's) do not fill them: one row of each account
    first, then rows taken evenly across the rest. The accounts start at the ``turn``-th, so
    that with more accounts than tries each one's first row is among them in its turn."""
    lines: dict[str, list[Finished]] = {}
    for item in batch:
        lines.setdefault(item.row.account, []).append(item)
    accounts = list(lines.values())
    if accounts:
        start = turn % len(accounts)
        accounts = accounts[start:] + accounts[:start]
    turns = [item for row in itertools.zip_longest(*accounts) for item in row if item]
    first = list(range(min(len(lines), ISOLATE_TRIES)))
    rest = range(len(first), len(turns))
    wanted = min(ISOLATE_TRIES - len(first), len(rest))
    if wanted > 0:
        step = len(rest) / wanted
        first += [rest[int(k * step)] for k in range(wanted)]
    chosen = set(first)
    return [turns[i] for i in first] + [f for i, f in enumerate(turns) if i not in chosen]


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
        # Rows whose outcome the database refused even reduced: tried again alone, apart from
        # the batches (``_retry_held_back``), so that they take no other row's turn.
        self._held_back: list[Finished] = []
        self._held_back_next = 0.0
        self._isolations = 0  # batches taken apart so far: where the next starts its accounts
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._supervised = Supervised("flusher", self._run, restarts, on_give_up=on_give_up)
        self._closing = False

    @property
    def idle(self) -> bool:
        return not self._pending and not self._held_back and not self._lock.locked()

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
            if not self._pending and not self._held_back:
                return
            self._held_back_next = 0.0  # the rows held back are tried again now, each time
            if not await self._flush_at_close():
                await asyncio.sleep(1.0)
        if self._pending or self._held_back:
            log.error("flusher.abandoned", rows=len(self._pending) + len(self._held_back))

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

        A batch the database refuses for one of its values (``StoreRefusedError``: a provider's
        text past what a column or index holds, say) is written again a row at a time
        (``_isolate``), so that one such outcome does not keep every other row's out, at every
        try, for ever. Any other error keeps the batch, to be tried again whole."""
        async with self._lock:
            started = time.monotonic()
            had = bool(self._pending)
            if not await self._flush_batch():
                return False
            if had and self._observe_flush is not None:
                self._observe_flush(time.monotonic() - started)
            # After the batch, a few at a time: rows held back never hold up the others.
            return await self._retry_held_back(time.monotonic())

    async def _flush_batch(self) -> bool:
        batch, self._pending = self._pending, []
        if not batch:
            return True
        try:
            part = await self._write(batch)
        except StoreRefusedError as exc:
            return await self._isolate(batch, exc)
        except StoreError as exc:
            return self._keep(batch, exc)
        except BaseException:
            # Nothing is lost to a cancellation or a crash: the restarted loop (or close)
            # writes the batch.
            self._pending = batch + self._pending
            raise
        self._report(*part)
        return True

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

    async def _isolate(self, batch: list[Finished], refusal: StoreRefusedError) -> bool:
        """A batch refused for a value (``refusal``), written a row at a time
        (``isolation_order``), each row as it came or reduced (``_write_refusable``) and
        reported as soon as it is written. A row refused even reduced is held back
        (``_retry_held_back``); what is not tried, the database having gone away midway,
        waits in pending. False, with ``flusher.failed``, when the database went away, or
        when nothing could be written: none of the first ``ISOLATE_TRIES`` rows, even reduced,
        which makes the fault every row's (the schema, not a value), and the batch is kept
        whole. An outcome is never turned into another: a refused row is written as what it
        was, reduced, or not yet."""
        done: set[int] = set()  # the batch's rows written or held back (by id)
        held: list[Finished] = []
        written = False
        failure: StoreError = refusal
        try:
            self._isolations += 1
            turn = self._isolations * ISOLATE_TRIES  # the next accounts each time
            for n, item in enumerate(isolation_order(batch, turn)):
                if not written and n >= ISOLATE_TRIES:
                    break
                part = await self._write_refusable(item)
                done.add(id(item))
                if part is None:
                    held.append(item)
                else:
                    written = True
                    self._report(*part)
            else:
                if written:
                    return True
        except StoreError as exc:
            failure = exc  # the database went away midway: the rest waits
        finally:
            # Also on a cancellation: what is written stays written, the rest is kept.
            kept = [f for f in batch if id(f) not in done] if written else batch
            if written:
                self._held_back += held
            self._pending = kept + self._pending
        log.warning("flusher.failed", error=str(failure), rows=len(kept))
        return False

    async def _write_refusable(self, item: Finished) -> Written | None:
        """``item`` written as it came; if refused, without the provider's answer and links;
        if refused again, without its texts either. None if refused every time."""
        fields = {
            "account": item.row.account,
            "outbox_id": item.row.id,
            "outcome": item.decision.resolution.kind,
        }
        try:
            return await self._write([item])
        except StoreRefusedError as exc:
            brief = exc.brief
        for texts in (False, True):
            try:
                part = await self._write([reduced(item, brief, texts=texts)])
            except StoreRefusedError as exc:
                brief = exc.brief
                continue
            log.warning("flusher.outcome_reduced", **fields, texts_left_out=texts, error=brief)
            return part
        # The provider's id, which the reduced outcome keeps, is what a human needs to find the
        # invoice should the lease run out first (then the rescue gives the row back as unknown).
        log.error(
            "flusher.outcome_refused",
            **fields,
            provider_invoice_id=item.decision.resolution.provider_invoice_id,
            error=brief,
        )
        return None

    async def _retry_held_back(self, now: float) -> bool:
        """The first ``HELD_BACK_TRIES`` rows held back, tried again alone, at most every
        ``HELD_BACK_RETRY`` seconds (those still refused go to the back); False if the
        database went away meanwhile."""
        if not self._held_back or now < self._held_back_next:
            return True
        self._held_back_next = now + HELD_BACK_RETRY
        rows, self._held_back = self._held_back[:HELD_BACK_TRIES], self._held_back[HELD_BACK_TRIES:]
        still: list[Finished] = []
        tried = 0  # rows of ``rows`` written or found still refused
        try:
            for item in rows:
                part = await self._write_refusable(item)
                tried += 1
                if part is None:
                    still.append(item)
                else:
                    self._report(*part)
        except StoreError as exc:
            log.warning("flusher.failed", error=str(exc), rows=len(rows) - tried)
            return False
        finally:
            # Kept, behind the others: those still refused, and those not tried (an outage, a
            # cancellation).
            self._held_back += still + rows[tried:]
        return True

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
