"""Billit's client retries a failed read at once, never a write (a loopback server that fails
on command)."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from worker.providers.base import HttpTimeouts
from worker.providers.billit.client import READ_RETRIES, BillitClient


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[str, dict[str, int]]]:
    state = {"fail": 0, "calls": 0}

    async def handler(request: web.Request) -> web.Response:
        state["calls"] += 1
        if state["fail"] > 0:
            state["fail"] -= 1
            return web.json_response({"statusCode": 500}, status=500)
        return web.json_response({"data": {}}, status=200 if request.method == "GET" else 201)

    app = web.Application()
    app.router.add_route("*", "/v1/thing", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", state
    await runner.cleanup()


async def test_a_read_that_fails_is_tried_again_up_to_the_limit(
    flaky: tuple[str, dict[str, int]],
) -> None:
    url, state = flaky
    client = BillitClient(url, "tok", HttpTimeouts(connect=1, total=2))
    try:
        state["fail"] = READ_RETRIES
        assert (await client.request("GET", "/v1/thing")).status == 200
        assert state["calls"] == READ_RETRIES + 1
        state.update(fail=READ_RETRIES + 1, calls=0)
        assert (await client.request("GET", "/v1/thing")).status == 500
        assert state["calls"] == READ_RETRIES + 1
        state.update(fail=1, calls=0)
        assert (await client.request("POST", "/v1/thing", json_body={})).status == 500
        assert state["calls"] == 1  # a create is never repeated here
    finally:
        await client.aclose()
