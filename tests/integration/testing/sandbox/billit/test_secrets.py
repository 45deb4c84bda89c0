"""The token never reaches outcomes, logs or the adapter's repr."""

from __future__ import annotations

from aiohttp import web
from structlog.testing import capture_logs

from tests.integration.testing.sandbox.billit.calls import invoice, send
from worker.outcome import Retry
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billit.adapter import Billit
from worker.providers.billit.options import BillitOptions


async def echo_token(request: web.Request) -> web.Response:
    said = request.headers.get("Authorization", "")
    body = {"statusCode": 500, "error": "Internal Server Error", "message": f"bad {said}"}
    return web.json_response(body, status=500)


async def test_the_token_never_reaches_outcomes_or_logs(adapters: list[Billit]) -> None:
    app = web.Application()
    app.router.add_get("/v1/account", echo_token)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    secret = "s3cr3t-b1ll1t-token"
    try:
        adapter = Billit(
            Credentials(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", token=secret),
            HttpTimeouts(connect=1, total=5),
            BillitOptions(invoice_type_id=1),
        )
        adapters.append(adapter)
        with capture_logs() as logs:
            outcome = await send(adapter, invoice())
    finally:
        await runner.cleanup()
    assert isinstance(outcome, Retry), outcome
    assert "[redacted]" in outcome.error
    assert secret not in repr(outcome)
    assert secret not in repr(logs)
    assert secret not in repr(adapter)
