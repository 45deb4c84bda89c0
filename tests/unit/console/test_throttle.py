"""Failed logins slow down a guesser per address and in all, and are forgotten in time."""

from __future__ import annotations

from worker.console.throttle import (
    FORGET_AFTER,
    FREE_FAILURES,
    GLOBAL_FAILURES,
    MAX_LOCKOUT,
    LoginThrottle,
)


def throttle(clock: list[float]) -> LoginThrottle:
    return LoginThrottle(now=lambda: clock[0])


def test_an_address_waits_longer_after_each_failure_past_the_free_ones() -> None:
    clock = [1000.0]
    limits = throttle(clock)
    for _ in range(FREE_FAILURES):
        assert limits.wait("10.0.0.1") == 0
        limits.failed("10.0.0.1")
    assert limits.wait("10.0.0.1") == 0
    waits = []
    for _ in range(12):
        limits.failed("10.0.0.1")
        waits.append(limits.wait("10.0.0.1"))
        clock[0] += waits[-1] + 1  # past the lockout, and past the global minute's first ones
    assert waits[:4] == [1, 2, 4, 8]
    assert max(waits) == MAX_LOCKOUT
    assert limits.wait("10.0.0.2") == 0


def test_a_success_clears_an_address_and_old_failures_are_forgotten() -> None:
    clock = [1000.0]
    limits = throttle(clock)
    for _ in range(FREE_FAILURES + 1):
        limits.failed("10.0.0.1")
    assert limits.wait("10.0.0.1") > 0
    limits.succeeded("10.0.0.1")
    assert limits.wait("10.0.0.1") == 0
    assert limits.failed("10.0.0.1") == 1
    clock[0] += FORGET_AFTER + 1
    assert limits.wait("10.0.0.1") == 0
    assert limits.failed("10.0.0.1") == 1


def test_many_addresses_together_meet_the_global_cap() -> None:
    clock = [1000.0]
    limits = throttle(clock)
    for n in range(GLOBAL_FAILURES):
        assert limits.wait(f"10.0.1.{n}") == 0
        limits.failed(f"10.0.1.{n}")
        clock[0] += 1
    assert limits.wait("10.0.2.1") == 60 - GLOBAL_FAILURES
    clock[0] += 60 - GLOBAL_FAILURES
    assert limits.wait("10.0.2.1") == 0
