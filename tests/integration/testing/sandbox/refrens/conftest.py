"""A Refrens sandbox on 127.0.0.1 per test, and adapters connected to it (closed after)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.testing.sandbox.refrens.calls import APP_ID, APP_SECRET, TOKEN, URL_KEY
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.refrens.adapter import Refrens, RefrensOptions
from worker.testing.sandbox.server import SandboxHandle, start_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox(
        "refrens", tokens=[TOKEN], apps={APP_ID: APP_SECRET}, url_keys=[URL_KEY, "other-biz"]
    )
    yield handle
    await handle.stop()


@pytest.fixture
async def adapters() -> AsyncIterator[list[Refrens]]:
    made: list[Refrens] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def connect(sandbox: SandboxHandle, adapters: list[Refrens]) -> Any:
    def _connect(
        token: str | None = TOKEN, total: float = 5.0, base_url: str | None = None, **options: Any
    ) -> Refrens:
        settings = RefrensOptions.model_validate({"url_key": URL_KEY, **options})
        adapter = Refrens(
            Credentials(base_url=base_url or sandbox.url + "/", token=token),
            settings,
            HttpTimeouts(connect=1.0, total=total),
        )
        adapters.append(adapter)
        return adapter

    return _connect
