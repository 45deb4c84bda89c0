"""The lease depth: how many rows an account leases ahead, on a fake clock."""

from worker.durations import parse_rate
from worker.engine.depth import LeaseDepth, lease_depth
from worker.engine.limits import AccountGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_rows(depth: LeaseDepth, clock: Clock, rows: int, seconds_each: float) -> None:
    """``rows`` finish one after the other, ``seconds_each`` apart, from one busy spell."""
    depth.busy()
    for left in range(rows - 1, -1, -1):
        clock.now += seconds_each
        depth.finished(idle=left == 0)


def test_the_depth_covers_what_the_account_finishes_in_two_claims() -> None:
    assert lease_depth(10_000, 0.003, floor=32, cap=128) == 60
    assert lease_depth(320, 0.003, floor=32, cap=128) == 32  # slow calls: the floor
    assert lease_depth(100_000, 0.003, floor=32, cap=128) == 128  # never past the cap


def test_an_account_starts_at_twice_its_concurrency_and_is_capped_at_eight_times() -> None:
    depth = LeaseDepth(16, Clock())
    assert (depth.rows, depth.floor, depth.cap) == (32, 32, 128)


# Binary fractions, so the clock adds up exactly: a row every 2**-13 s is 8,192 a second,
# and a claim of 2**-8 s (3.9 ms) then covers 32 rows.
ROW = 2**-13
CLAIM = 2**-8


def test_a_fast_account_leases_deeper_and_a_slow_one_does_not() -> None:
    clock = Clock()
    fast, slow = LeaseDepth(16, clock), LeaseDepth(16, clock)
    run_rows(fast, clock, 32, ROW)
    fast.claimed(CLAIM)
    assert fast.rows == 64
    run_rows(slow, clock, 32, 0.05 / 16)  # 16 calls of 50 ms at once: 320 a second
    slow.claimed(CLAIM)
    assert slow.rows == 32


def test_idle_spells_waiting_for_a_claim_do_not_count_against_the_rate() -> None:
    # 16 rows, then nothing held for 10 ms (waiting for the claim): still 8,192 a second.
    clock = Clock()
    depth = LeaseDepth(16, clock)
    run_rows(depth, clock, 16, ROW)
    clock.now += 0.010
    depth.claimed(CLAIM)
    assert depth.rows == 64


def test_rate_and_claim_time_are_smoothed_over_claims() -> None:
    clock = Clock()
    depth = LeaseDepth(16, clock)
    run_rows(depth, clock, 32, ROW)
    depth.claimed(CLAIM)
    assert depth.rows == 64
    # One claim four times slower moves the claim time a quarter of the way there.
    run_rows(depth, clock, 32, ROW)
    depth.claimed(4 * CLAIM)
    assert depth.rows == 112


def test_a_sample_waits_until_a_quarter_of_the_floor_has_finished() -> None:
    clock = Clock()
    depth = LeaseDepth(16, clock)
    # Two rows at 65,536 a second: alone they would ask for the cap, but are too few to judge.
    run_rows(depth, clock, 2, 2**-16)
    depth.claimed(0.003)
    assert depth.rows == 32
    run_rows(depth, clock, 6, ROW)
    depth.claimed(0.003)  # 8 rows over both spells: 10,486 a second
    assert depth.rows == 63


def test_the_gate_claims_once_a_quarter_of_its_depth_is_free() -> None:
    clock = Clock()
    gate = AccountGate(rate=parse_rate("1000000/second"), concurrency=4, clock=clock)
    for _ in range(8):
        gate.take()
    for _ in range(8):
        clock.now += 0.0001
        gate.give()
    gate.depth.claimed(0.002)  # 10,000 a second, 2 ms claims: 40 rows, capped at 32
    assert gate.depth.rows == 32
    for _ in range(25):
        gate.take()
    assert gate.free() == 0  # 7 free: not yet a quarter of 32
    gate.take()
    gate.give()
    gate.give()
    assert gate.free() == 8
