"""A Billit sandbox on 127.0.0.1 per test, and adapters connected to it (closed after)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.testing.sandbox.billit.calls import TOKEN
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billit.adapter import Billit
from worker.providers.billit.options import BillitOptions
from worker.testing.sandbox.server import SandboxHandle, start_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("billit", tokens=[TOKEN])
    yield handle
    await handle.stop()


@pytest.fixture
async def adapters() -> AsyncIterator[list[Billit]]:
    made: list[Billit] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def connect(sandbox: SandboxHandle, adapters: list[Billit]) -> Any:
    def _connect(
        token: str = TOKEN, total: float = 5.0, base: str | None = None, **options: Any
    ) -> Billit:
        adapter = Billit(
            Credentials(base_url=base or sandbox.url + "/v1", token=token),
            HttpTimeouts(connect=1.0, total=total),
            BillitOptions.model_validate({"invoice_type_id": 1, **options}),
        )
        adapters.append(adapter)
        return adapter

    return _connect
