"""A background chore that raises is logged and runs again, with capped exponential backoff
that starts over after a success; its log line carries the error but never a secret."""

import asyncio
import io
import json
import time
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from worker.engine.chores import PeriodicChore, Restarts
from worker.logs import configure_logging


async def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not done():
        assert time.monotonic() < deadline, "the chore did not run again"
        await asyncio.sleep(0.01)


class Script:
    """An action that raises RuntimeError on the calls named, and works on the others."""

    def __init__(self, crash_on: set[int]) -> None:
        self.crash_on = crash_on
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls in self.crash_on:
            raise RuntimeError(f"boom {self.calls}")


async def test_a_crashing_chore_is_logged_and_runs_again_with_backoff() -> None:
    action = Script(crash_on={1, 2, 4})
    chore = PeriodicChore("probe", 0.02, action, at_start=True)
    with capture_logs() as logs:
        chore.start()
        await wait_until(lambda: action.calls >= 6)
        await chore.stop()
    crashed = [e for e in logs if e["event"] == "chore.crashed"]
    assert [(e["chore"], e["error_type"], e["error"]) for e in crashed] == [
        ("probe", "RuntimeError", "boom 1"),
        ("probe", "RuntimeError", "boom 2"),
        ("probe", "RuntimeError", "boom 4"),
    ]
    assert all(e["log_level"] == "error" for e in crashed)
    # Doubling from twice the interval, and starting over after the success of call 3.
    assert [e["restart_in"] for e in crashed] == [0.04, 0.08, 0.04]
    recovered = [e for e in logs if e["event"] == "chore.recovered"]
    assert [(e["chore"], e["after_crashes"]) for e in recovered] == [("probe", 2), ("probe", 1)]


async def test_the_backoff_waits_before_the_next_try() -> None:
    action = Script(crash_on={1, 2})
    chore = PeriodicChore("probe", 0.1, action, at_start=True)
    started = time.monotonic()
    chore.start()
    await wait_until(lambda: action.calls >= 3)
    elapsed = time.monotonic() - started
    await chore.stop()
    assert elapsed >= 0.2 + 0.4 - 0.02  # 2 x 0.1, then 4 x 0.1


def test_restart_delays_double_up_to_the_cap() -> None:
    restarts = Restarts(first=0.5, cap=10.0)
    assert [restarts.delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert not restarts.gives_up(1000)
    assert Restarts(first=1, cap=1, give_up_after=3).gives_up(3)
    assert not Restarts(first=1, cap=1, give_up_after=3).gives_up(2)


@pytest.mark.usefixtures("restore_logging")
async def test_a_crash_line_never_holds_a_secret() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", secrets=["tok-4f9a8b7c6d5e"], stream=out)

    async def leaky() -> None:
        raise ValueError("refused header x-api-token: tok-4f9a8b7c6d5e")

    chore = PeriodicChore("metrics", 10, leaky, at_start=True)
    chore.start()
    await wait_until(lambda: "chore.crashed" in out.getvalue())
    await chore.stop()
    event = json.loads(out.getvalue().splitlines()[0])
    assert event["event"] == "chore.crashed"
    assert event["error_type"] == "ValueError"
    assert "tok-4f9a" not in out.getvalue()
    assert "[REDACTED]" in event["error"]
