"""Billit's refusals, auth and account errors, rate limits and server errors, as outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.testing.sandbox.billit.calls import (
    TOKEN,
    created,
    invoice,
    requests,
    send,
    warm,
)
from worker.outcome import DeadLetter, PauseAccount, PauseReason, RateLimited, Reason, Retry, Synced
from worker.testing.sandbox.server import SandboxHandle


async def test_unknown_invoice_type_is_rejected_with_billits_errors(
    sandbox: SandboxHandle, connect: Any
) -> None:
    outcome = await send(connect(), invoice(provider_options={"invoiceTypeId": 999}))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.REJECTED
    assert outcome.http_status == 422
    assert "invoiceTypeId: The selected invoice type id is invalid." in outcome.error
    assert created(sandbox) == []


async def test_a_rate_without_a_vat_is_rejected_before_sending(
    sandbox: SandboxHandle, connect: Any
) -> None:
    doc = invoice(lines=[{"name": "X", "quantity": 1, "unit_price": 1, "tax_rate": 7}])
    outcome = await send(connect(), doc)
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.REJECTED
    assert "tax rate 7%" in outcome.error
    assert "24%" in outcome.error
    assert requests(sandbox, "POST /v1/invoices") == 0
    # The account was fetched for this attempt, so it is not fetched again to double-check.
    assert requests(sandbox, "GET /v1/account") == 1


async def test_incident_400_is_retried_once_then_rejected(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    sandbox.state.change({"incidents": 2})
    first = await send(adapter, invoice(), outbox_id=5)
    assert isinstance(first, Retry), first
    assert (first.http_status, first.outcome_unknown) == (400, False)
    assert "incident" in first.error
    second = await send(adapter, invoice(), outbox_id=5)
    assert isinstance(second, DeadLetter), second
    assert (second.reason, second.http_status) == (Reason.REJECTED, 400)
    # Another row's first incident is still retried, and a row that got through is forgotten.
    sandbox.state.change({"incidents": 1})
    assert isinstance(await send(adapter, invoice(), outbox_id=6), Retry)
    assert isinstance(await send(adapter, invoice(), outbox_id=6), Synced)
    assert len(created(sandbox)) == 1


async def test_revoked_token_pauses_the_account(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"tokens": []})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.AUTH_FAILED
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.reason is Reason.AUTH_FAILED
    assert "Authorization Required" in outcome.invoice.error


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"blocked": True}, "blocked"),
        ({"suspended": True}, "suspended"),
        ({"subscription_active": False}, "expired"),
    ],
)
async def test_blocked_account_is_forbidden(
    sandbox: SandboxHandle, connect: Any, change: dict[str, Any], words: str
) -> None:
    sandbox.state.change(change)
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.FORBIDDEN
    assert isinstance(outcome.invoice, DeadLetter)
    assert words in outcome.invoice.error
    assert requests(sandbox, "POST /v1/invoices") == 0


async def test_block_after_the_account_was_cached_is_a_403(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    assert isinstance(await send(adapter, invoice(), outbox_id=1), Synced)
    sandbox.state.change({"blocked": True})
    outcome = await send(adapter, invoice(), outbox_id=2)
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.FORBIDDEN
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.http_status == 403
    assert len(created(sandbox)) == 1


async def test_wrong_base_url_is_misconfigured_and_the_invoice_waits(
    sandbox: SandboxHandle, connect: Any
) -> None:
    outcome = await send(connect(base=sandbox.url + "/api"), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.http_status == 404


async def test_sandbox_rate_limit_is_rate_limited_with_retry_after(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"rate_limit_per_minute": 4})
    adapter = connect()
    # account, 3 customer searches: the window is full before the customer create.
    outcome = await send(adapter, invoice())
    assert isinstance(outcome, RateLimited), outcome
    assert outcome.after is not None
    assert 55 <= outcome.after <= 60
    assert "Too Many Attempts." in outcome.error
    assert TOKEN not in repr(outcome)
    assert created(sandbox) == []


async def test_server_error_is_retried_and_creates_nothing(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"faults": {"error_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry), outcome
    assert outcome.outcome_unknown is False  # the account fetch failed: nothing was sent
    assert "insidentId" in str(outcome.response)


async def test_the_last_request_of_the_window_holds_the_account_before_a_429(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    await warm(adapter)  # account and customer cached: one request per invoice from here
    used = sum(sum(by.values()) for by in sandbox.state.stats.requests.values())
    sandbox.state.change({"rate_limit_per_minute": used + 2})
    first = await send(adapter, invoice(), key="q-1")
    assert isinstance(first, Synced), first
    assert first.quota_wait is None  # one request left
    last = await send(adapter, invoice(), key="q-2")
    assert isinstance(last, Synced), last
    assert last.quota_wait == 60  # none left: hold for Billit's window, no Retry-After given
