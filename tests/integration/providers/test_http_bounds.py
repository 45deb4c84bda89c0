"""A provider's answer is read up to ``[http] max_response_size`` (after decompression) and within
the request timeout; past either bound the call fails with its outcome unknown.

The hostile answers come from a real aiohttp app on loopback. Memory is measured in a child
process (its peak RSS, ``VmHWM``, against its RSS before the call), so what earlier tests
allocated in this process cannot hide or fake a spike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.edges import adapter_for, create_once, serve
from worker.errors import TransportError
from worker.outcome import Retry
from worker.providers import http
from worker.providers.base import DETAIL_LIMIT, HttpTimeouts
from worker.testing.sandbox import PROFILES

MIB = 1024 * 1024
HUGE = 256 * MIB
# What a bounded read may add to the child's peak: the 1 MiB answer, buffers, the parsed reply.
MEMORY_BUDGET = 48 * MIB


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """256 MiB of JSON-ish spaces, gzipped to about a quarter of a megabyte."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * MIB
    parts = [packer.compress(block) for _ in range(HUGE // MIB)]
    return b"".join([*parts, packer.flush()])


def hostile_app(bomb: bytes) -> web.Application:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        block = b" " * MIB
        with contextlib.suppress(ConnectionError):
            for _ in range(HUGE // MIB):
                await response.write(block)
        return response

    async def inflating(request: web.Request) -> web.Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=bomb, headers=headers)

    async def dripping(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(600):
                await response.write(b" ")
                await asyncio.sleep(0.05)
        return response

    app = web.Application()
    app.router.add_route("*", "/huge/{tail:.*}", huge)
    app.router.add_route("*", "/inflating/{tail:.*}", inflating)
    app.router.add_route("*", "/dripping/{tail:.*}", dripping)
    return app


@contextlib.asynccontextmanager
async def hostile(bomb: bytes) -> AsyncIterator[str]:
    runner = web.AppRunner(hostile_app(bomb), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


CHILD = """
import asyncio, json, sys
from tests.edges import adapter_for, create_once
from worker.providers.base import DETAIL_LIMIT, HttpTimeouts
from worker.testing.sandbox import PROFILES

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

async def main():
    profile = PROFILES["billclap"]
    provider = adapter_for(profile, sys.argv[1], token="t0k", timeouts=HttpTimeouts(connect=2, total=60))
    before = kib("VmRSS")
    outcome = await create_once(profile, provider)
    print(json.dumps({"growth": (kib("VmHWM") - before) * 1024, "outcome": repr(outcome)[:500]}))

asyncio.run(main())
"""


async def in_child(url: str) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["huge", "inflating"])
async def test_an_oversized_answer_fails_unknown_without_being_held(kind: str, bomb: bytes) -> None:
    async with hostile(bomb) as url:
        found = await in_child(f"{url}/{kind}")
    assert int(str(found["growth"])) < MEMORY_BUDGET, found
    outcome = str(found["outcome"])
    assert outcome.startswith("Retry("), outcome
    assert "outcome_unknown=True" in outcome
    assert "max_response_size" in outcome


async def test_gzip_within_the_bound_is_read_whole() -> None:
    body = json.dumps({"pad": " " * (MIB // 2)}).encode()

    async def gzipped(request: web.Request) -> web.Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        return web.Response(body=packer.compress(body) + packer.flush(), headers=headers)

    async with serve(gzipped) as url:
        session = http.new_session(HttpTimeouts(connect=1, total=5))
        async with session:
            reply = await http.request(
                session, "GET", url, headers={}, bounds=HttpTimeouts(connect=1, total=5)
            )
    assert reply.body == {"pad": " " * (MIB // 2)}


async def test_the_bound_counts_decompressed_bytes() -> None:
    bounds = HttpTimeouts(connect=1, total=5, max_response_size=64 * 1024)
    body = b" " * (65 * 1024)

    async def gzipped(request: web.Request) -> web.Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        return web.Response(body=packer.compress(body) + packer.flush(), headers=headers)

    async with serve(gzipped) as url, http.new_session(bounds) as session:
        with pytest.raises(TransportError) as failed:
            await http.request(session, "GET", url, headers={}, bounds=bounds)
    assert failed.value.sent is True
    assert "65536" in str(failed.value)


async def test_a_dripping_answer_fails_within_the_request_timeout(bomb: bytes) -> None:
    profile = PROFILES["billclap"]
    async with hostile(bomb) as url:
        provider = adapter_for(
            profile, f"{url}/dripping", token="t0k", timeouts=HttpTimeouts(connect=1, total=1.0)
        )
        started = time.monotonic()
        outcome = await create_once(profile, provider)
        elapsed = time.monotonic() - started
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert elapsed < 2.5, elapsed


@pytest.mark.parametrize("provider", sorted(PROFILES))
async def test_a_long_error_message_is_quoted_bounded(provider: str) -> None:
    """A JSON error whose message is 128 KiB: the error text stays short (it goes to
    the outbox, logs and ``status``), the response kept is cut as usual."""
    long = "m" * (MIB // 8)

    async def shouting(request: web.Request) -> web.Response:
        body = {"name": "GeneralError", "error": long, "message": long, "errors": {"f": long}}
        return web.json_response(body, status=500)

    profile = PROFILES[provider]
    async with serve(shouting) as url:
        outcome = await create_once(profile, adapter_for(profile, url, token="t0k"))
    assert isinstance(outcome, Retry), outcome
    assert len(outcome.error) <= DETAIL_LIMIT + 200, len(outcome.error)
