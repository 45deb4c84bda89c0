"""A BillClap sandbox on 127.0.0.1 per test, adapters connected to it (closed after), raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.integration.testing.sandbox.billclap.calls import OTHER, TOKEN
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billclap.adapter import BillClap
from worker.testing.sandbox.server import SandboxHandle, start_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("billclap", tokens=[TOKEN, OTHER])
    yield handle
    await handle.stop()


@pytest.fixture
async def adapters(sandbox: SandboxHandle) -> AsyncIterator[list[BillClap]]:
    made: list[BillClap] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def connect(sandbox: SandboxHandle, adapters: list[BillClap]) -> Any:
    def _connect(token: str = TOKEN, total: float = 5.0) -> BillClap:
        adapter = BillClap(
            Credentials(base_url=sandbox.url + "/", token=token),
            HttpTimeouts(connect=1.0, total=total),
        )
        adapters.append(adapter)
        return adapter

    return _connect


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
