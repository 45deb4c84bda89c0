"""Injected faults (latency, errors, resets, 429, stalls) and what the adapter makes of them."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from tests.integration.testing.sandbox.billclap.calls import get, invoice, send
from worker.outcome import DeadLetter, RateLimited, Reason, Retry, Synced
from worker.testing.sandbox.billclap.app import CREATE_PATH, books_of
from worker.testing.sandbox.faults import FaultConfig, Faults
from worker.testing.sandbox.server import SandboxHandle


async def test_latency_delays_the_answer(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"latency": 0.2, "jitter": 0.05}})
    started = time.monotonic()
    assert isinstance(await send(connect(), invoice()), Synced)
    assert time.monotonic() - started >= 0.2
    assert sandbox.state.faults.injected == {"latency": 1}


async def test_error_fault_is_an_unknown_outcome_and_creates_nothing(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"faults": {"error_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry)
    assert (outcome.outcome_unknown, outcome.http_status) == (True, 500)
    assert books_of(sandbox.app).created() == []


async def test_reset_fault_is_a_transport_error(
    sandbox: SandboxHandle, connect: Any, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"faults": {"reset_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert outcome.http_status is None
    assert books_of(sandbox.app).created() == []
    stats = await get(http, sandbox.url + "/_sandbox/stats")
    assert stats["requests"] == {f"POST {CREATE_PATH}": {"reset": 1}}
    assert stats["faults_injected"] == {"reset": 1}


async def test_rate429_fault_carries_retry_after(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"rate429_rate": 1, "retry_after": 7}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, RateLimited)
    assert outcome.after == 7.0
    assert books_of(sandbox.app).created() == []


async def test_commit_then_stall_times_out_and_the_retry_finds_the_duplicate(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 10}})
    adapter = connect(total=0.5)
    started = time.monotonic()
    outcome = await send(adapter, invoice("ST-1"))
    assert time.monotonic() - started < 3
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert [r["invoice_number"] for r in books_of(sandbox.app).created()] == ["ST-1"]
    # The number made the retry safe: BillClap refuses a second copy, and we say it is ours.
    sandbox.state.change({"faults": {"stall_rate": 0}})
    retried = await send(adapter, invoice("ST-1"), prior_unknown=True)
    assert isinstance(retried, DeadLetter)
    assert retried.reason is Reason.DUPLICATE
    assert "probably" in retried.error
    assert len(books_of(sandbox.app).created()) == 1


async def test_faults_never_touch_introspection(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"faults": {"reset_rate": 0.5, "error_rate": 0.5}})
    for _ in range(5):
        assert (await get(http, sandbox.url + "/_sandbox/created")) == {"created": []}
    assert sandbox.state.faults.injected == {}


def test_seeded_faults_replay_the_same_sequence() -> None:
    config = FaultConfig(error_rate=0.3, stall_rate=0.3, reset_rate=0.2, seed=42)
    first, second = Faults(config), Faults(config)
    picks = [first.pick() for _ in range(50)]
    assert picks == [second.pick() for _ in range(50)]
    assert {"error", "stall", "reset", None} <= set(picks)


@pytest.mark.parametrize(
    "faults", [{"error_rate": 0.6, "reset_rate": 0.6}, {"error_rate": -1}, {"typo_rate": 0.1}]
)
def test_bad_fault_configs_are_refused(faults: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        FaultConfig().updated(faults)
