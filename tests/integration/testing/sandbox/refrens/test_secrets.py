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
from worker.outcome import DeadLetter
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
