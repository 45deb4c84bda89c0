"""A request that fails before any byte leaves (a header aiohttp refuses, a URL it cannot use)
is "not sent", never an unknown outcome: the row is retried, not parked as ``ambiguous``.

Through a real adapter (BillClap: its token travels in a header) at the shared HTTP seam; a
small real aiohttp app counts what reaches it, and nothing must."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests import factories
from worker.invoice import parse_invoice
from worker.outcome import Outcome, Retry
from worker.providers.base import Attempt, Credentials, HttpTimeouts
from worker.providers.billclap.adapter import BillClap

TOKEN = "s3cr3t-t0ken"


class Provider:
    def __init__(self) -> None:
        self.hits = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response({"status": True})


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    provider = Provider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    provider.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield provider
    await runner.cleanup()


async def create(base_url: str, token: str) -> Outcome:
    """One create of a numberless invoice: an unknown outcome would park it as ``ambiguous``."""
    adapter = BillClap(
        Credentials(base_url=base_url, token=token), HttpTimeouts(connect=1, total=5)
    )
    attempt = Attempt(
        outbox_id=1,
        account="shop",
        idempotency_key="k-1",
        invoice=parse_invoice(factories.invoice(None)),
        number=1,
        prior_unknown=False,
    )
    try:
        return await adapter.create_invoice(attempt)
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "token",
    [f"{TOKEN}\n{TOKEN}", f"{TOKEN}\r\nX-Injected: 1", f"{TOKEN}\u0000", f"{TOKEN}\u0007"],
    ids=["two lines", "header injection", "NUL", "bell"],
)
async def test_a_token_that_cannot_go_in_a_header_is_not_sent(
    provider: Provider, token: str
) -> None:
    outcome = await create(provider.url, token)
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is False, outcome
    assert "not sent" in outcome.error
    assert TOKEN not in outcome.error
    assert provider.hits == 0


@pytest.mark.parametrize("base_url", ["not a url", "ftp://127.0.0.1", "http://", "https:///x"])
async def test_a_url_that_cannot_be_used_is_not_sent(provider: Provider, base_url: str) -> None:
    outcome = await create(base_url, TOKEN)
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is False, outcome
    assert provider.hits == 0
