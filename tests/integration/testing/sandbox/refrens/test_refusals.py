"""Account and data errors: plan, URL key, validation, duplicates, numbers per business."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.testing.sandbox.refrens.calls import (
    INVOICES,
    created,
    invoice,
    requests,
    send,
)
from worker.outcome import DeadLetter, PauseAccount, PauseReason, Reason, Retry, Synced
from worker.testing.sandbox.server import SandboxHandle


async def test_plan_without_api_is_forbidden(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"api_plan": False})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.FORBIDDEN
    assert isinstance(outcome.invoice, DeadLetter)
    assert outcome.invoice.response["className"] == "forbidden"
    assert created(sandbox) == []


async def test_unknown_url_key_is_misconfigured(sandbox: SandboxHandle, connect: Any) -> None:
    outcome = await send(connect(url_key="no-such-business"), invoice())
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.response["name"] == "NotFound"


async def test_validation_errors_are_rejected_with_fields(
    sandbox: SandboxHandle, connect: Any
) -> None:
    options = {"invoiceType": "PROFORMA"}
    outcome = await send(connect(), invoice(provider_options=options))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.REJECTED
    assert outcome.http_status == 400
    assert "invoiceType" in outcome.response["errors"]
    assert "invoiceType" in outcome.error
    assert created(sandbox) == []


@pytest.mark.parametrize("status", [400, 409])
async def test_duplicate_on_a_first_attempt_is_a_collision(
    sandbox: SandboxHandle, connect: Any, status: int
) -> None:
    sandbox.state.change({"duplicate_status": status})
    assert isinstance(await send(connect(), invoice("D-1")), Synced)
    outcome = await send(connect(), invoice("D-1"))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.DUPLICATE
    assert outcome.http_status == status
    assert "producer collision" in outcome.error
    assert len(created(sandbox)) == 1
    assert f"GET {INVOICES}" not in requests(sandbox)


async def test_numbers_are_per_business(sandbox: SandboxHandle, connect: Any) -> None:
    assert isinstance(await send(connect(), invoice("B-1")), Synced)
    assert isinstance(await send(connect(url_key="other-biz"), invoice("B-1")), Synced)
