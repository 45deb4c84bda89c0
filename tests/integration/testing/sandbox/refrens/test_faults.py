"""Injected faults (429, server errors, resets) and an unreachable Refrens, as outcomes."""

from __future__ import annotations

from typing import Any

from tests.integration.testing.sandbox.refrens.calls import created, invoice, send
from worker.outcome import RateLimited, Retry
from worker.testing.sandbox.server import SandboxHandle


async def test_429_carries_retry_after(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"rate429_rate": 1, "retry_after": 7}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, RateLimited), outcome
    assert outcome.after == 7.0
    assert outcome.response["name"] == "TooManyRequests"
    assert created(sandbox) == []


async def test_server_error_is_an_unknown_outcome(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"error_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry), outcome
    assert (outcome.outcome_unknown, outcome.http_status) == (True, 500)
    assert outcome.response["className"] == "general-error"


async def test_reset_is_an_unknown_outcome(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"reset_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry), outcome
    assert outcome.outcome_unknown is True
    assert created(sandbox) == []


async def test_unreachable_refrens_is_a_clean_retry(connect: Any) -> None:
    outcome = await send(connect(base_url="http://127.0.0.1:9"), invoice())
    assert isinstance(outcome, Retry), outcome
    assert outcome.outcome_unknown is False
