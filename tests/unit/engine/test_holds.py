"""The process's own holds on accounts: they follow the database's throttle, and only extend."""

from worker.claims import AccountAction
from worker.engine.holds import AccountHolds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_written_throttle_holds_until_the_database_lets_the_claim_take_rows() -> None:
    clock = Clock()
    holds = AccountHolds(clock)
    holds.hold("athens", 1.0)  # decided: the answer said the quota is spent
    clock.now = 0.04
    holds.written([AccountAction(account="athens", throttle=1.0)], resumed=[])
    # The database counts the second from the write: a claim at 1.0 would find the account
    # still throttled and the loop would then sleep a whole poll.
    assert not holds.claimable("athens", 1.0)
    assert holds.next_end(1.0) is not None
    assert holds.claimable("athens", 1.04)


def test_a_shorter_hold_never_cuts_a_longer_one() -> None:
    clock = Clock()
    holds = AccountHolds(clock)
    holds.hold("athens", 60.0)  # a provider's Retry-After
    holds.hold("athens", 0.1)  # the token bucket's next token
    assert not holds.claimable("athens", 30.0)
    assert holds.claimable("athens", 60.0)
