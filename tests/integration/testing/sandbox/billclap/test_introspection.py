"""The sandbox's introspection endpoints: state, created invoices, stats and reset."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.testing.sandbox.billclap.calls import SESSION, get, invoice, post, send
from worker.outcome import Synced
from worker.testing.sandbox.billclap.app import CREATE_PATH
from worker.testing.sandbox.server import SandboxHandle


async def test_state_changes_at_runtime_and_bad_keys_change_nothing(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    url = sandbox.url + "/_sandbox/state"
    status, state = await post(http, url, {"credits": 3, "faults": {"latency": 0.01}})
    assert status == 200
    assert (state["credits_left"], state["faults"]["latency"]) == (3, 0.01)
    for bad in ({"credits": 1, "no_such_option": 1}, {"faults": {"error_rate": 2}}, [1]):
        status, answer = await post(http, url, bad)
        assert status == 400
        assert "error" in answer
    state = await get(http, url)
    assert (state["credits_left"], state["faults"]["latency"], state["faults"]["error_rate"]) == (
        3,
        0.01,
        0,
    )


async def test_created_stats_and_reset(
    sandbox: SandboxHandle, connect: Any, http: aiohttp.ClientSession
) -> None:
    await send(connect(), invoice("R-1"))
    await send(connect(SESSION), invoice("R-2"))
    (record,) = (await get(http, sandbox.url + "/_sandbox/created"))["created"]
    assert set(record) >= {"invoice_id", "invoice_number", "request", "created_at"}
    assert record["invoice_number"] == "R-1"
    stats = await get(http, sandbox.url + "/_sandbox/stats")
    assert stats["requests"] == {f"POST {CREATE_PATH}": {"200": 1, "401": 1}}
    assert stats["credits_left"] is None
    status, _ = await post(http, sandbox.url + "/_sandbox/reset", {})
    assert status == 200
    assert (await get(http, sandbox.url + "/_sandbox/created")) == {"created": []}
    assert (await get(http, sandbox.url + "/_sandbox/stats"))["requests"] == {}
    assert isinstance(await send(connect(), invoice("R-1")), Synced)
