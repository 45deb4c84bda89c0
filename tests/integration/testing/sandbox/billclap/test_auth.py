"""BillClap's token, plan and business checks, and the token kept out of outcomes and logs."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests.integration.testing.sandbox.billclap.calls import (
    EXPIRED,
    SESSION,
    TOKEN,
    invoice,
    post,
    send,
)
from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, PauseAccount, PauseReason, Reason, Retry
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.billclap.adapter import BillClap, build_request
from worker.testing.sandbox.billclap.app import CREATE_PATH, books_of
from worker.testing.sandbox.server import SandboxHandle


async def test_missing_token_and_bearer_are_refused(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    body = build_request(parse_invoice(invoice()))
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        status, answer = await post(http, sandbox.url + CREATE_PATH, body, headers)
        assert (status, answer) == (401, {"status": False, "message": "API token is required"})
    assert books_of(sandbox.app).created() == []


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (SESSION, "Invalid token type"),
        (EXPIRED, "jwt expired"),
        ("eyJh.eyJz.c2ln", "invalid signature"),
        ("not-a-jwt", "jwt malformed"),
    ],
)
async def test_bad_tokens_pause_the_account(
    sandbox: SandboxHandle, connect: Any, token: str, message: str
) -> None:
    outcome = await send(connect(token), invoice())
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.AUTH_FAILED
    assert outcome.invoice.response == {"status": False, "message": message}


async def test_plan_without_api_is_forbidden(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"api_plan": False})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.FORBIDDEN
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.http_status == 200
    assert books_of(sandbox.app).created() == []


async def test_inactive_business_is_misconfigured(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"business_active": False})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)


async def echo_token(request: web.Request) -> web.Response:
    token = request.headers.get("x-api-token", "")
    return web.json_response({"status": False, "error": f"bad token {token}"}, status=500)


async def test_the_token_never_reaches_outcomes_or_logs(adapters: list[BillClap]) -> None:
    app = web.Application()
    app.router.add_post(CREATE_PATH, echo_token)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    secret = "s3cr3t-t0ken-value"
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        adapter = BillClap(
            Credentials(base_url=url, token=secret), HttpTimeouts(connect=1, total=5)
        )
        adapters.append(adapter)
        with capture_logs() as logs:
            outcome = await send(adapter, invoice())
    finally:
        await runner.cleanup()
    assert isinstance(outcome, Retry)
    assert "[redacted]" in outcome.error
    assert secret not in repr(outcome)
    assert secret not in repr(logs)
