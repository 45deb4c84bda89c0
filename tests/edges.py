"""Hostile providers for tests of the HTTP seam: small real aiohttp apps on loopback, and each
registered adapter pointed at one.

Nothing here patches a client: the adapter under test makes real requests, and the app answers
as a misbehaving provider (or a proxy in front of one) would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.factories import invoice
from worker.invoice import parse_invoice
from worker.outcome import Outcome
from worker.providers.base import Attempt, Credentials, HttpTimeouts, Provider
from worker.providers.registry import PROVIDERS
from worker.testing.sandbox.profile import SandboxProfile

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """``handler`` answering every method and path on a free loopback port; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@dataclass
class Recorder:
    """A host that records every request it gets (headers and body) and answers a fake
    success: what an attacker's host behind a redirect would do."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    answer: dict[str, Any] = field(
        default_factory=lambda: {"invoice_id": "evil-1", "_id": "evil-1", "accessToken": "evil"}
    )

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )
        return web.json_response(self.answer, status=201)

    def text(self) -> str:
        return json.dumps(self.seen)


def adapter_for(
    profile: SandboxProfile,
    base_url: str,
    *,
    token: str | None = None,
    timeouts: HttpTimeouts | None = None,
    **account: Any,
) -> Provider:
    """The profile's adapter against ``base_url``; ``account`` overrides its account keys."""
    spec = PROVIDERS[profile.provider]
    options = spec.options.model_validate({**profile.account, **account})
    return spec.factory(
        Credentials(base_url=base_url, token=token),
        options,
        timeouts or HttpTimeouts(connect=1.0, total=5.0),
    )


async def create_once(
    profile: SandboxProfile, provider: Provider, *, prior_unknown: bool = False
) -> Outcome:
    """One create attempt of a valid sample invoice through ``provider``."""
    doc = invoice(currency=profile.currency, provider_options=profile.sample_options(1))
    attempt = Attempt(
        outbox_id=1,
        account="edge",
        idempotency_key="edge-1",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
    )
    try:
        return await provider.create_invoice(attempt)
    finally:
        await provider.aclose()
