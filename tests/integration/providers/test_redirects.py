"""A provider that answers 3xx is never followed: no credential, login body or invoice reaches the
host it points to, and the account pauses (misconfigured: base_url moved) with the row waiting,
its outcome known (nothing was created).

Each test puts a real aiohttp app at the account's ``base_url`` that answers ``307`` pointing to a
second app on another port, which records whatever reaches it and answers a fake success.
"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from tests.edges import Handler, Recorder, adapter_for, create_once, serve
from worker.outcome import Outcome, PauseAccount, PauseReason, Retry
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.server import start_sandbox

SECRET = "Qx9-redirect-secret-7f3a"
APP_SECRET = "Qy8-app-secret-c41d"
QUERY_MARK = "qmark-should-not-show"


def moved(target: str, *, status: int = 307) -> Handler:
    """Answers ``status`` pointing to the same path (and a query) at ``target``."""

    async def handle(request: web.Request) -> web.Response:
        location = f"{target}{request.path}?next={QUERY_MARK}"
        return web.Response(status=status, headers={"Location": location})

    return handle


def assert_paused_for_the_move(outcome: Outcome, target: str, status: int = 307) -> None:
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.MISCONFIGURED
    waiting = outcome.invoice
    assert isinstance(waiting, Retry)
    assert waiting.outcome_unknown is False  # nothing was created
    assert waiting.http_status == status
    assert f"HTTP {status}" in waiting.error
    assert target in waiting.error  # scheme and host of the Location
    assert "base_url" in waiting.error
    assert QUERY_MARK not in repr(outcome)
    assert SECRET not in repr(outcome)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_billclap_never_sends_the_token_or_invoice_where_a_redirect_points(
    status: int,
) -> None:
    recorder = Recorder()
    async with serve(recorder.handle) as target, serve(moved(target, status=status)) as base:
        profile = PROFILES["billclap"]
        outcome = await create_once(profile, adapter_for(profile, base, token=SECRET))
    assert recorder.seen == []
    assert_paused_for_the_move(outcome, target, status)


async def test_refrens_never_sends_its_token_where_a_redirect_points() -> None:
    recorder = Recorder()
    async with serve(recorder.handle) as target, serve(moved(target)) as base:
        profile = PROFILES["refrens"]
        outcome = await create_once(profile, adapter_for(profile, base, token=SECRET))
    assert recorder.seen == []
    assert_paused_for_the_move(outcome, target)


async def test_refrens_never_sends_its_app_secret_login_where_a_redirect_points() -> None:
    recorder = Recorder()
    async with serve(recorder.handle) as target, serve(moved(target)) as base:
        profile = PROFILES["refrens"]
        provider = adapter_for(profile, base, app_id="app-1", app_secret=APP_SECRET)
        outcome = await create_once(profile, provider)
    assert recorder.seen == []
    assert APP_SECRET not in repr(outcome)
    assert_paused_for_the_move(outcome, target)


async def test_billit_never_sends_its_token_where_a_redirect_points() -> None:
    recorder = Recorder()
    async with serve(recorder.handle) as target, serve(moved(target)) as base:
        profile = PROFILES["billit"]
        outcome = await create_once(profile, adapter_for(profile, base, token=SECRET))
    assert recorder.seen == []
    assert_paused_for_the_move(outcome, target)


@pytest.mark.parametrize(
    ("redirected", "prior_unknown"),
    [("/v1/customers", False), ("/v1/invoices", True), ("/v1/invoices", False)],
    ids=["customer-search", "tag-scan-list", "create"],
)
async def test_billit_calls_around_the_create_are_never_redirected(
    redirected: str, prior_unknown: bool
) -> None:
    """The sandbox answers everything but ``redirected``, which a front moves elsewhere."""
    profile = PROFILES["billit"]
    recorder = Recorder()
    sandbox = await start_sandbox("billit", **profile.options)
    try:
        async with (
            serve(recorder.handle) as target,
            aiohttp.ClientSession() as client,
            serve(_front(sandbox.url, moved(target), redirected, client)) as base,
        ):
            provider = adapter_for(profile, base, token=profile.token)
            outcome = await create_once(profile, provider, prior_unknown=prior_unknown)
    finally:
        await sandbox.stop()
    assert recorder.seen == []
    assert_paused_for_the_move(outcome, target)


def _front(upstream: str, redirect: Handler, prefix: str, client: aiohttp.ClientSession) -> Handler:
    """Passes requests through to ``upstream``, except those under ``prefix`` (redirected)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path.startswith(prefix):
            return await redirect(request)
        async with client.request(
            request.method,
            upstream + request.path_qs,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    return handle
