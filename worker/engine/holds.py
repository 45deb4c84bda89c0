"""What one process knows about accounts it must not claim for yet, and the account-level fate
of each attempt: pauses decided once, throttles, token waits and breaker trips.

The deployment-wide truth is ``invoice_sync.account_state`` and the rate buckets, which the
claim statement reads; this is the process's own view between a decision and its write, and
of waits too short to be worth a round trip (the next token, a breaker's cool-down).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import structlog

from worker.claims import AccountAction, Claimed
from worker.engine.runtimes import AccountRuntime
from worker.outcome import Fate
from worker.policy import Decision, release

log = structlog.get_logger("worker.engine.loop")


class AccountHolds:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # Accounts this process saw paused (→ when it decided): later rows hitting the same
        # wall are given back instead of dead-lettered.
        self._paused: dict[str, float] = {}
        # Accounts whose pause or throttle is decided but maybe not written yet: not claimed.
        self._pausing: set[str] = set()
        self._until: dict[str, float] = {}

    def claimable(self, account: str, now: float) -> bool:
        return account not in self._pausing and self._until.get(account, 0.0) <= now

    def hold(self, account: str, seconds: float) -> None:
        """Claim nothing for ``account`` for ``seconds`` from now (a hold only ever extends,
        as the database's throttle does)."""
        until = self._clock() + seconds
        self._until[account] = max(self._until.get(account, until), until)

    def next_end(self, now: float) -> float | None:
        """Seconds until the soonest hold ends, or None when nothing is held."""
        left = [until - now for until in self._until.values() if until > now]
        return min(left, default=None)

    def claimed(self, row: Claimed, claim_started: float) -> None:
        """A row of a paused account came back to a claim that began after the pause: the
        account was resumed (by an operator or another replica's probe)."""
        if not row.probe and self._paused.get(row.account, claim_started) < claim_started:
            del self._paused[row.account]

    def once_per_pause(self, decision: Decision, row: Claimed) -> Decision:
        """The first row to find an account broken takes the pause's fate; rows already in
        flight that hit the same wall go back to pending instead of flooding the dead letters,
        and so does a probe that finds the account still broken (the pause is refreshed)."""
        action = decision.account_action
        if action is None:
            return decision
        if action.throttle is not None:
            self.hold(row.account, action.throttle)
        if action.pause_reason is None:
            return decision
        self._pausing.add(row.account)
        error = decision.resolution.error
        if row.probe:
            return Decision(
                resolution=release(row, error=error),
                account_action=action,
                fate=Fate.PROBE_FAILED,
            )
        if row.account in self._paused:
            return Decision(resolution=release(row, error=error), fate=Fate.RELEASED)
        self._paused[row.account] = self._clock()
        return decision

    def breaker(self, decision: Decision, runtime: AccountRuntime) -> Decision:
        """Feed the account's breaker; when this call opens it, hold the account here and, via
        a throttle, at every replica, so a failing provider is not hammered."""
        breaker = runtime.gate.breaker
        opened = breaker.record(decision.health) if breaker is not None else None
        if opened is None or decision.account_action is not None:
            return decision
        log.warning("account.breaker_opened", account=runtime.name, seconds=opened)
        self.hold(runtime.name, opened)
        throttle = AccountAction(account=runtime.name, throttle=opened)
        return replace(decision, account_action=throttle)

    def written(self, actions: Sequence[AccountAction], resumed: Iterable[str]) -> None:
        """Pauses and throttles are in the database (the claim skips them for every replica),
        and these accounts were resumed by a successful probe."""
        for action in actions:
            self._pausing.discard(action.account)
            if action.throttle is not None:
                # The database counts the throttle from this write, a little after the
                # decision held it here: wake when the claim can take rows again, not at
                # the next poll (which would turn a one-second quota hold into several).
                self.hold(action.account, action.throttle)
        for account in resumed:
            self._paused.pop(account, None)
