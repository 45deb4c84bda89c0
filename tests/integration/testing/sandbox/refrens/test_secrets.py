"""The static token, app secret and issued token never reach outcomes or logs."""

from __future__ import annotations

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests.integration.testing.sandbox.refrens.calls import (
    APP_ID,
    APP_SECRET,
    INVOICES,
    URL_KEY,
    invoice,
    send,
)
from worker.outcome import DeadLetter, Retry
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.refrens.adapter import Refrens, RefrensOptions

ISSUED = "eyJhbGciOi.eyJzdWIiOi.issued-jwt-signature"


async def echo_secrets(request: web.Request) -> web.Response:
    if request.path == "/authentication":
        body = await request.json()
        return web.json_response({"accessToken": ISSUED, "echo": body["appSecret"]}, status=201)
    header = request.headers.get("Authorization", "")
    message = f"bad header {header}"
    return web.json_response(
        {"name": "BadRequest", "message": message, "code": 400, "errors": {"auth": header}},
        status=400,
    )


@pytest.mark.parametrize("mode", ["static", "login"])
async def test_secrets_never_reach_outcomes_or_logs(adapters: list[Refrens], mode: str) -> None:
    app = web.Application()
    app.router.add_post("/authentication", echo_secrets)
    app.router.add_post(INVOICES, echo_secrets)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    static = "s3cr3t-static-token"
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        extra = {"app_id": APP_ID, "app_secret": APP_SECRET} if mode == "login" else {}
        adapter = Refrens(
            Credentials(base_url=url, token=None if extra else static),
            RefrensOptions.model_validate({"url_key": URL_KEY, **extra}),
            HttpTimeouts(connect=1, total=5),
        )
        adapters.append(adapter)
        with capture_logs() as logs:
            outcome = await send(adapter, invoice())
    finally:
        await runner.cleanup()
    assert isinstance(outcome, DeadLetter), outcome
    assert "[redacted]" in outcome.error
    for secret in (static, APP_SECRET, ISSUED):
        assert secret not in repr(outcome)
        assert secret not in repr(logs)
        assert secret not in repr(adapter)


@pytest.mark.parametrize(
    "issued", ["t" * 150_000, "eyJhbGciOi.line\nbreak.sig", "eyJhbGciOi.caf\u00e9.sig"]
)
async def test_a_token_that_cannot_be_used_is_refused_at_login(
    adapters: list[Refrens], issued: str
) -> None:
    # A hostile server issuing 150 KB tokens made every later scrub of its answers (searched for
    # each token) take seconds to minutes of the event loop, and each token's compiled pattern
    # 11 MB; a token with a line break could never be sent.
    creates: list[str] = []

    async def authentication(request: web.Request) -> web.Response:
        return web.json_response({"accessToken": issued}, status=201)

    async def create(request: web.Request) -> web.Response:
        creates.append(request.headers.get("Authorization", ""))
        return web.json_response({"_id": "x"}, status=201)

    app = web.Application()
    app.router.add_post("/authentication", authentication)
    app.router.add_post(INVOICES, create)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        adapter = Refrens(
            Credentials(base_url=url, token=None),
            RefrensOptions.model_validate(
                {"url_key": URL_KEY, "app_id": APP_ID, "app_secret": APP_SECRET}
            ),
            HttpTimeouts(connect=1, total=5),
        )
        adapters.append(adapter)
        outcome = await send(adapter, invoice())
    finally:
        await runner.cleanup()
    assert isinstance(outcome, Retry), outcome
    assert "a token that cannot be used" in outcome.error
    assert issued not in repr(outcome)
    assert creates == []
