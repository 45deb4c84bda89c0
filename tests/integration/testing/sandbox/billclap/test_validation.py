"""BillClap's documented validation errors become dead letters with its message."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.testing.sandbox.billclap.calls import TOKEN, invoice, post, send
from worker.outcome import DeadLetter, Reason
from worker.testing.sandbox.billclap.app import CREATE_PATH, books_of
from worker.testing.sandbox.server import SandboxHandle


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (invoice(customer={"name": "No Phone"}), "Mobile number or cash sale is required"),
        (
            invoice(lines=[{"name": "New Thing", "quantity": 1, "unit_price": 5}]),
            "Product sell price and gst is required",
        ),
        (
            invoice(amount_paid=1059.01),
            "Received amount can not be greater than invoice total amount",
        ),
    ],
)
async def test_documented_validation_errors(
    sandbox: SandboxHandle, connect: Any, doc: dict[str, Any], message: str
) -> None:
    sandbox.state.change({"credits": 5})
    outcome = await send(connect(), doc)
    assert outcome == DeadLetter(
        reason=Reason.REJECTED,
        error=message,
        http_status=500,
        response={"status": False, "error": message},
    )
    assert books_of(sandbox.app).created() == []
    assert books_of(sandbox.app).credits_left == 5


async def test_amount_paid_of_1180_exceeds_billclaps_total(connect: Any) -> None:
    # Paying 1180 on a 1000 "With Tax" line plus 59 of packaging: BillClap computes 1059 and
    # refuses the overpayment.
    outcome = await send(connect(), invoice(amount_paid=1180))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is Reason.REJECTED


async def test_non_json_body_is_a_500_with_a_message(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, answer = await post(
        http,
        sandbox.url + CREATE_PATH,
        "{not json",
        {"x-api-token": TOKEN, "Content-Type": "application/json"},
    )
    assert status == 500
    assert answer["status"] is False
    assert "JSON" in answer["error"]
