"""A request that fails before any byte leaves (a header aiohttp refuses, a URL it cannot use)
is "not sent", never an unknown outcome: the row is retried, not parked as ``ambiguous``.

A small real aiohttp app counts what reaches it; nothing must."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests import factories
from worker.errors import TransportError
from worker.invoice import parse_invoice
from worker.outcome import Retry
from worker.providers import http
from worker.providers.base import Attempt, Credentials, HttpTimeouts
from worker.providers.billclap import BillClap


class Counter:
    def __init__(self) -> None:
        self.hits = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response({"status": True})


@pytest.fixture
async def provider() -> AsyncIterator[Counter]:
    counter = Counter()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counter.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    counter.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield counter
    await runner.cleanup()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-token": "s3cr3t-one\ns3cr3t-two"},
        {"x-api-token": "s3cr3t\r\nX-Injected: 1"},
        {"Authorization": "Bearer s3cr3t\u0000"},
        {"x-api-token": "s3cr3t\u0007bell"},
    ],
)
async def test_a_header_that_cannot_be_sent_is_not_sent(
    provider: Counter, headers: dict[str, str]
) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError) as caught:
            await http.request(session, "POST", provider.url + "/x", headers=headers, json_body={})
    assert caught.value.sent is False
    assert "s3cr3t" not in str(caught.value)
    assert provider.hits == 0


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http://", "https:///x"])
async def test_a_url_that_cannot_be_used_is_not_sent(provider: Counter, url: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError) as caught:
            await http.request(session, "POST", url, headers={}, json_body={})
    assert caught.value.sent is False
    assert provider.hits == 0


async def test_an_adapter_whose_token_cannot_be_sent_retries_with_a_known_outcome(
    provider: Counter,
) -> None:
    adapter = BillClap(
        Credentials(base_url=provider.url, token="s3cr3t-one\ns3cr3t-two"),
        HttpTimeouts(connect=1, total=5),
    )
    attempt = Attempt(
        outbox_id=1, account="shop", idempotency_key="k-1",
        invoice=parse_invoice(factories.invoice(None)), number=1, prior_unknown=False,
    )  # fmt: skip
    try:
        outcome = await adapter.create_invoice(attempt)
    finally:
        await adapter.aclose()
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is False, outcome
    assert "not sent" in outcome.error
    assert "s3cr3t" not in outcome.error
    assert provider.hits == 0
