"""The real BillClap adapter creates invoices in the sandbox as sent, provider_options included."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest

from tests.integration.testing.sandbox.billclap.calls import get, invoice, send
from worker.invoice import parse_invoice
from worker.logs import configure_logging
from worker.outcome import DeadLetter, Reason, Synced
from worker.providers.billclap.adapter import build_request
from worker.testing.sandbox.billclap.app import CREATE_PATH, books_of
from worker.testing.sandbox.server import SandboxHandle


async def test_happy_path_creates_the_invoice_we_sent(sandbox: SandboxHandle, connect: Any) -> None:
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Synced)
    (record,) = books_of(sandbox.app).created()
    assert outcome.provider_invoice_id == str(record["invoice_id"])
    assert outcome.invoice_number == "WEB-1" == record["invoice_number"]
    assert outcome.link == record["link"]
    assert outcome.link is not None
    assert outcome.link.startswith(f"https://app.billclap.com/preview/{record['invoice_id']}/")
    assert record["request"] == build_request(parse_invoice(invoice()))
    assert record["totals"]["total_amount"] == 1059.0


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "lines"), [("debug", 1), ("info", 0)])
async def test_the_answer_line_is_written_at_debug_only(
    sandbox: SandboxHandle, connect: Any, level: str, lines: int
) -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level=level, stream=out)
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Synced)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    answered = [e for e in events if e["event"] == "provider.billclap.answered"]
    assert len(answered) == lines
    if answered:
        assert answered[0]["status"] == 200
        assert answered[0]["outcome"] == "Synced"


async def test_flat_success_option(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"flat_success": True})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Synced)
    assert "result" not in outcome.response


async def test_adapter_sends_only_x_api_token(
    sandbox: SandboxHandle, connect: Any, http: aiohttp.ClientSession
) -> None:
    await send(connect(), invoice())
    stats = await get(http, sandbox.url + "/_sandbox/stats")
    assert stats["auth_headers"] == {"x-api-token": 1}
    assert stats["recent"][0]["auth"] == ["x-api-token"]
    assert stats["requests"] == {f"POST {CREATE_PATH}": {"200": 1}}


@pytest.mark.parametrize(
    ("options", "field"),
    [({"invoice_number": None}, "invoice_number"), ({"product_details": []}, "product_details")],
)
async def test_options_naming_an_owned_field_are_refused_unsent(
    sandbox: SandboxHandle, connect: Any, options: dict[str, Any], field: str
) -> None:
    outcome = await send(connect(), invoice(provider_options=options))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.INVALID_PAYLOAD
    assert outcome.error.startswith(f"provider_options.{field}:")
    assert books_of(sandbox.app).created() == []
    assert sandbox.state.stats.requests == {}


async def test_options_adding_a_field_are_sent(sandbox: SandboxHandle, connect: Any) -> None:
    outcome = await send(connect(), invoice(provider_options={"bank_id": 3}))
    assert isinstance(outcome, Synced), outcome
    (record,) = books_of(sandbox.app).created()
    assert record["request"]["bank_id"] == 3
    assert record["request"]["invoice_number"] == "WEB-1"
