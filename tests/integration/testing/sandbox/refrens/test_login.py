"""The app-secret login: a token cached, shared, refreshed once, and pauses when refused."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.testing.sandbox.refrens.calls import (
    APP_ID,
    INVOICES,
    created,
    invoice,
    login,
    logins,
    requests,
    send,
)
from worker.outcome import DeadLetter, PauseAccount, PauseReason, Reason, Synced
from worker.testing.sandbox.refrens.app import books_of
from worker.testing.sandbox.server import SandboxHandle


async def test_login_token_is_cached_and_shared(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = login(connect)
    outcomes = await asyncio.gather(*(send(adapter, invoice(f"L-{i}")) for i in range(6)))
    assert all(isinstance(o, Synced) for o in outcomes), outcomes
    assert isinstance(await send(adapter, invoice("L-6")), Synced)
    assert logins(adapter) == 1
    assert books_of(sandbox.app).issuer.logins == 1
    assert requests(sandbox)["POST /authentication"] == {"201": 1}


async def test_expired_token_is_refreshed_once_for_all(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = login(connect)
    assert isinstance(await send(adapter, invoice("E-1")), Synced)
    books_of(sandbox.app).issuer.expire_all()
    outcomes = await asyncio.gather(*(send(adapter, invoice(f"E-{i}")) for i in range(2, 6)))
    assert all(isinstance(o, Synced) for o in outcomes), outcomes
    assert logins(adapter) == 2
    assert requests(sandbox)[f"POST {INVOICES}"] == {"200": 5, "401": 4}
    assert len(created(sandbox)) == 5


async def test_short_lifetime_expires_by_the_clock(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"token_lifetime": 0.3})
    adapter = login(connect)
    assert isinstance(await send(adapter, invoice("T-1")), Synced)
    await asyncio.sleep(0.4)
    assert isinstance(await send(adapter, invoice("T-2")), Synced)
    assert logins(adapter) == 2


async def test_failed_refresh_pauses_for_auth(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = login(connect)
    assert isinstance(await send(adapter, invoice("R-1")), Synced)
    sandbox.state.change({"apps": {}})  # the app is revoked: its token and its login fail
    outcome = await send(adapter, invoice("R-2"))
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.AUTH_FAILED
    assert "app-secret login" in outcome.invoice.error
    assert requests(sandbox)["POST /authentication"] == {"201": 1, "401": 1}
    assert len(created(sandbox)) == 1


async def test_token_refused_even_after_refresh_pauses(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"token_lifetime": 0})  # every token is born expired
    outcome = await send(login(connect), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert isinstance(outcome.invoice, DeadLetter)
    assert "jwt expired" in outcome.invoice.error
    assert requests(sandbox)[f"POST {INVOICES}"] == {"401": 2}


async def test_wrong_app_secret_pauses_for_auth(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = connect(token=None, app_id=APP_ID, app_secret="wrong-secret")
    outcome = await send(adapter, invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.response["message"] == "Invalid login"
    assert f"POST {INVOICES}" not in requests(sandbox)


async def test_revoked_static_token_pauses_without_refresh(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"tokens": []})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert requests(sandbox) == {f"POST {INVOICES}": {"401": 1}}
