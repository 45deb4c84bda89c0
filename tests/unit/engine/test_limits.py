"""The breaker and the gate, on a fake clock; the call slot on the real one."""

import asyncio
import contextlib

from worker.durations import parse_rate
from worker.engine.limits import AccountGate, Breaker, BreakerPolicy, share_claim


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate_with_breaker(clock: Clock, failures: int = 3) -> AccountGate:
    policy = BreakerPolicy(failures=failures, cooldown=10, max_cooldown=25)
    return AccountGate(rate=parse_rate("10/second"), concurrency=4, breaker=Breaker(policy, clock))


def test_breaker_opens_after_consecutive_failures_then_half_opens_and_closes() -> None:
    clock = Clock()
    gate = gate_with_breaker(clock)
    breaker = gate.breaker
    assert breaker is not None
    assert breaker.record("down") is None
    assert breaker.record("up") is None  # a success resets the count
    assert breaker.record("down") is None
    assert breaker.record("down") is None
    assert breaker.record("down") == 10
    assert gate.free() == 0
    assert breaker.record("down") is None  # a call that started before it opened
    clock.now += 10
    assert breaker.half_open
    assert gate.free() == 1  # one probing call
    gate.take()
    assert gate.free() == 0
    gate.give()
    assert breaker.record("up") is None
    assert not breaker.half_open
    assert gate.free() == 8  # the depth's floor, twice the concurrency: rows are leased ahead


def test_a_failed_half_open_call_reopens_for_longer_up_to_the_cap() -> None:
    clock = Clock()
    gate = gate_with_breaker(clock, failures=1)
    breaker = gate.breaker
    assert breaker is not None
    assert breaker.record("down") == 10
    clock.now += 10
    assert breaker.record("down") == 20
    clock.now += 20
    assert breaker.record("down") == 25
    assert breaker.blocked_for() == 25


def test_rate_limits_and_429s_do_not_move_the_breaker() -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(failures=1), clock)
    assert breaker.record(None) is None
    assert breaker.blocked_for() == 0


def test_default_burst_is_most_of_one_second_of_requests_and_never_below_one() -> None:
    assert AccountGate(rate=parse_rate("20/second"), concurrency=1).burst == 10
    assert AccountGate(rate=parse_rate("60/minute"), concurrency=1).burst == 1
    assert AccountGate(rate=parse_rate("10/hour"), concurrency=1).burst == 1
    request = AccountGate(rate=parse_rate("60/minute"), concurrency=1, burst=3).claim_request(2)
    assert (request.rows, request.rate, request.burst) == (2, 1.0, 3.0)


def test_claims_wait_until_a_quarter_of_the_lease_depth_is_free() -> None:
    gate = AccountGate(rate=parse_rate("100/second"), concurrency=4)
    assert gate.free() == 8
    for _ in range(7):
        gate.take()
    assert gate.free() == 0  # one slot free: not worth a claim yet
    gate.give()
    assert gate.free() == 2


def test_a_claim_within_the_limit_takes_every_account_s_room() -> None:
    assert share_claim({"a": 8, "b": 2}, 10) == {"a": 8, "b": 2}


def test_a_claim_never_takes_more_than_the_limit_and_shares_it_evenly() -> None:
    assert share_claim({"a": 8}, 3) == {"a": 3}
    assert share_claim({"a": 8, "b": 8}, 6) == {"a": 3, "b": 3}
    # What an account has no room for goes to the others.
    assert share_claim({"a": 1, "b": 8, "c": 8}, 9) == {"a": 1, "b": 4, "c": 4}


def test_rows_left_after_equal_shares_go_round_the_accounts() -> None:
    rooms = {"a": 4, "b": 4, "c": 4}
    assert share_claim(rooms, 1, turn=0) == {"a": 1}
    assert share_claim(rooms, 1, turn=1) == {"b": 1}
    assert share_claim(rooms, 2, turn=2) == {"c": 1, "a": 1}
    for turn in range(3):
        assert sum(share_claim(rooms, 7, turn=turn).values()) == 7


async def test_a_call_cancelled_while_waiting_for_the_rate_limit_gives_its_slot_back() -> None:
    gate = AccountGate(rate=parse_rate("2/second"), concurrency=1)
    for _ in range(2):  # the limiter's two tokens
        async with gate.call_slot():
            pass
    waiting = asyncio.create_task(gate.call_slot().__aenter__())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    # Had the cancelled call kept the one slot, this would wait for ever.
    async with asyncio.timeout(2):
        async with gate.call_slot():
            pass
