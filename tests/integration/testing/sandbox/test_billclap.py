"""The real BillClap adapter against the BillClap sandbox on 127.0.0.1 (no database needed)."""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests import factories
from worker.cli.tool_arguments import configure_sandbox
from worker.invoice import parse_invoice
from worker.outcome import (
    DeadLetter,
    Outcome,
    PauseAccount,
    PauseReason,
    RateLimited,
    Reason,
    Retry,
    Synced,
)
from worker.providers.base import Attempt, Credentials, HttpTimeouts
from worker.providers.billclap.adapter import BillClap, build_request
from worker.testing.sandbox.billclap.app import CREATE_PATH, books_of
from worker.testing.sandbox.faults import FaultConfig, Faults
from worker.testing.sandbox.server import (
    SandboxHandle,
    options_from_args,
    start_sandbox,
)

TOKEN = "tok-firm-a"
OTHER = "tok-firm-b"
SESSION = "sandbox-session-token"
EXPIRED = "sandbox-expired-token"


def invoice(number: str | None = "WEB-1", **changes: Any) -> dict[str, Any]:
    """The shared test invoice plus a charge, paid in full (1000 incl. 18% + 50 + 18% = 1059)."""
    base: dict[str, Any] = {
        "charges": [{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}],
        "amount_paid": 1059,
    }
    return factories.invoice(number, **(base | copy.deepcopy(changes)))


def attempt_for(doc: dict[str, Any], *, prior_unknown: bool = False) -> Attempt:
    return Attempt(
        outbox_id=7,
        account="acme",
        idempotency_key="key-7",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("billclap", tokens=[TOKEN, OTHER])
    yield handle
    await handle.stop()


@pytest.fixture
async def adapters(sandbox: SandboxHandle) -> AsyncIterator[list[BillClap]]:
    made: list[BillClap] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def connect(sandbox: SandboxHandle, adapters: list[BillClap]) -> Any:
    def _connect(token: str = TOKEN, total: float = 5.0) -> BillClap:
        adapter = BillClap(
            Credentials(base_url=sandbox.url + "/", token=token),
            HttpTimeouts(connect=1.0, total=total),
        )
        adapters.append(adapter)
        return adapter

    return _connect


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(adapter: BillClap, doc: dict[str, Any], *, prior_unknown: bool = False) -> Outcome:
    return await adapter.create_invoice(attempt_for(doc, prior_unknown=prior_unknown))


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = body if isinstance(body, str) else None
    async with http.post(url, json=None if data else body, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


# --- happy path -----------------------------------------------------------------------------


async def test_happy_path_creates_the_invoice_we_sent(sandbox: SandboxHandle, connect: Any) -> None:
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Synced)
    (record,) = books_of(sandbox.app).created()
    assert outcome.provider_invoice_id == str(record["invoice_id"])
    assert outcome.invoice_number == "WEB-1" == record["invoice_number"]
    assert outcome.link == record["link"]
    assert outcome.link.startswith(f"https://app.billclap.com/preview/{record['invoice_id']}/")
    assert record["request"] == build_request(parse_invoice(invoice()))
    assert record["totals"]["total_amount"] == 1059.0


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


# --- auth, plan, business --------------------------------------------------------------------


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


# --- validation -----------------------------------------------------------------------------


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


async def test_design_example_amount_paid_exceeds_billclaps_total(connect: Any) -> None:
    # DESIGN.md's example pays 1180 on a 1000 "With Tax" line plus 59 of packaging: BillClap
    # computes 1059 and refuses the overpayment.
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


# --- numbers, credits, parties, catalog, totals ---------------------------------------------


async def test_duplicate_number_is_per_firm(connect: Any) -> None:
    assert isinstance(await send(connect(), invoice("N-1")), Synced)
    duplicate = await send(connect(), invoice("N-1"))
    assert isinstance(duplicate, DeadLetter)
    assert duplicate.reason is Reason.DUPLICATE
    assert "producer collision" in duplicate.error
    assert isinstance(await send(connect(OTHER), invoice("N-1")), Synced)


async def test_numbers_come_from_the_prefix_and_sequence(
    sandbox: SandboxHandle, connect: Any
) -> None:
    await send(connect(), invoice("INV-2"))
    for _ in range(2):
        assert isinstance(await send(connect(), invoice(None)), Synced)
    numbers = [r["invoice_number"] for r in books_of(sandbox.app).created()]
    assert numbers == ["INV-2", "INV-1", "INV-3"]


async def test_credits_run_out_and_can_be_topped_up(
    sandbox: SandboxHandle, connect: Any, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"credits": 2})
    assert isinstance(await send(connect(), invoice("C-1")), Synced)
    assert isinstance(await send(connect(OTHER), invoice("C-2")), Synced)
    outcome = await send(connect(), invoice("C-3"))
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.CREDITS_EXPIRED
    assert outcome.invoice == DeadLetter(
        reason=Reason.CREDITS_EXPIRED,
        error="BillClap: Credits Expired!!!",
        http_status=500,
        response={"status": False, "error": "Credits Expired!!!"},
    )
    assert (await get(http, sandbox.url + "/_sandbox/stats"))["credits_left"] == 0
    status, _ = await post(http, sandbox.url + "/_sandbox/state", {"credits": 1})
    assert status == 200
    assert isinstance(await send(connect(), invoice("C-3")), Synced)


async def test_parties_match_by_mobile_and_type(sandbox: SandboxHandle, connect: Any) -> None:
    phone = {"name": "Acme", "phone": "+91 98765 43210"}
    await send(connect(), invoice("P-1", customer=phone))
    await send(connect(), invoice("P-2", customer={**phone, "phone": "9876543210"}))
    await send(connect(), invoice("P-3", type="purchase_bill", customer=phone))
    first, second, purchase = books_of(sandbox.app).created()
    assert first["party_id"] == second["party_id"]
    assert (first["party_type"], purchase["party_type"]) == ("CUSTOMER", "SUPPLIER")
    assert purchase["party_id"] != first["party_id"]
    by_id = invoice("P-4", customer={"id": first["party_id"], "name": "Acme"})
    assert isinstance(await send(connect(), by_id), Synced)
    assert books_of(sandbox.app).created()[-1]["party_id"] == first["party_id"]


async def test_catalog_products_need_no_price(
    sandbox: SandboxHandle, http: aiohttp.ClientSession, connect: Any
) -> None:
    line = {
        "name": "Widget",
        "quantity": 1,
        "unit_price": 100,
        "tax_rate": 18,
        "price_includes_tax": False,
    }
    await send(connect(), invoice("K-1", lines=[line], charges=[], amount_paid=None))
    product_id = books_of(sandbox.app).created()[0]["product_ids"][0]
    url, headers = sandbox.url + CREATE_PATH, {"x-api-token": TOKEN}
    base = {"type": "SALESINVOICE", "party_detail": {"cash_sale": True}}
    for item in (
        {"product_name": " widget ", "product_quantity": 2},
        {"product_id": product_id, "product_name": "Renamed"},
    ):
        status, answer = await post(http, url, {**base, "product_details": [item]}, headers)
        assert (status, answer["result"]["status"]) == (200, True)
    totals = [r["totals"]["total_amount"] for r in books_of(sandbox.app).created()]
    assert totals == [118.0, 236.0, 118.0]
    assert books_of(sandbox.app).created()[1]["product_ids"] == [product_id]
    status, answer = await post(
        http, url, {**base, "product_details": [{"product_name": "Gadget"}]}, headers
    )
    assert (status, answer["error"]) == (500, "Product sell price and gst is required")
    # A product named in another firm's catalog is unknown here.
    other = {"x-api-token": OTHER}
    status, answer = await post(
        http, url, {**base, "product_details": [{"product_name": "Widget"}]}, other
    )
    assert (status, answer["error"]) == (500, "Product sell price and gst is required")


async def test_totals_follow_the_documented_rules(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    body: dict[str, Any] = {
        "type": "SALESINVOICE",
        "party_detail": {"party_name": "T", "mobile_no": "9000000000"},
        "product_details": [
            {
                "product_name": "A",
                "product_sell_price": 100,
                "product_gst": 18,
                "product_sell_price_tax_type": "Without Tax",
                "product_quantity": 2,
                "discount_type": "percentage",
                "product_discount": 10,
            },
            {
                "product_name": "B",
                "product_sell_price": 118,
                "product_gst": 18,
                "discount_type": "RS",
                "product_discount": 11.8,
            },
            {"product_sell_price": 999},
        ],
        "additional_charges": [
            {"chargeName": "Freight", "chargeValue": 50, "tax": 18},
            {"chargeName": "Untaxed", "chargeValue": 10},
        ],
        "additional_discount": 5,
        "autoRoundOffChecked": True,
        "receive_amount": 373,
    }
    url, headers = sandbox.url + CREATE_PATH, {"x-api-token": TOKEN}
    status, _ = await post(http, url, body, headers)
    assert status == 200
    totals = books_of(sandbox.app).created()[0]["totals"]
    # A: 2 x (90 + 16.20); B: 106.20 incl. tax = 90 + 16.20; freight 50 + 9; less 5; 372.60.
    assert totals == {
        "taxable_amount": 270.0,
        "total_tax": 48.6,
        "total_discount": 36.8,
        "charges": 59.0,
        "round_off_amount": 0.4,
        "total_amount": 373.0,
        "receive_amount": 373.0,
    }
    status, answer = await post(http, url, {**body, "receive_amount": 373.01}, headers)
    assert (status, answer["error"]) == (
        500,
        "Received amount can not be greater than invoice total amount",
    )


async def test_cash_sale_receives_the_full_total(sandbox: SandboxHandle, connect: Any) -> None:
    doc = invoice("CS-1", customer=None, cash_sale=True, amount_paid=None)
    assert isinstance(await send(connect(), doc), Synced)
    totals = books_of(sandbox.app).created()[0]["totals"]
    assert totals["receive_amount"] == totals["total_amount"] == 1059.0


# --- faults ---------------------------------------------------------------------------------


async def test_latency_delays_the_answer(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"latency": 0.2, "jitter": 0.05}})
    started = time.monotonic()
    assert isinstance(await send(connect(), invoice()), Synced)
    assert time.monotonic() - started >= 0.2
    assert sandbox.state.faults.injected == {"latency": 1}


async def test_error_fault_is_an_unknown_outcome_and_creates_nothing(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"faults": {"error_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry)
    assert (outcome.outcome_unknown, outcome.http_status) == (True, 500)
    assert books_of(sandbox.app).created() == []


async def test_reset_fault_is_a_transport_error(
    sandbox: SandboxHandle, connect: Any, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"faults": {"reset_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert outcome.http_status is None
    assert books_of(sandbox.app).created() == []
    stats = await get(http, sandbox.url + "/_sandbox/stats")
    assert stats["requests"] == {f"POST {CREATE_PATH}": {"reset": 1}}
    assert stats["faults_injected"] == {"reset": 1}


async def test_rate429_fault_carries_retry_after(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"rate429_rate": 1, "retry_after": 7}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, RateLimited)
    assert outcome.after == 7.0
    assert books_of(sandbox.app).created() == []


async def test_commit_then_stall_times_out_and_the_retry_finds_the_duplicate(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 10}})
    adapter = connect(total=0.5)
    started = time.monotonic()
    outcome = await send(adapter, invoice("ST-1"))
    assert time.monotonic() - started < 3
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert [r["invoice_number"] for r in books_of(sandbox.app).created()] == ["ST-1"]
    # The number made the retry safe: BillClap refuses a second copy, and we say it is ours.
    sandbox.state.change({"faults": {"stall_rate": 0}})
    retried = await send(adapter, invoice("ST-1"), prior_unknown=True)
    assert isinstance(retried, DeadLetter)
    assert retried.reason is Reason.DUPLICATE
    assert "probably" in retried.error
    assert len(books_of(sandbox.app).created()) == 1


async def test_faults_never_touch_introspection(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"faults": {"reset_rate": 0.5, "error_rate": 0.5}})
    for _ in range(5):
        assert (await get(http, sandbox.url + "/_sandbox/created")) == {"created": []}
    assert sandbox.state.faults.injected == {}


def test_seeded_faults_replay_the_same_sequence() -> None:
    config = FaultConfig(error_rate=0.3, stall_rate=0.3, reset_rate=0.2, seed=42)
    first, second = Faults(config), Faults(config)
    picks = [first.pick() for _ in range(50)]
    assert picks == [second.pick() for _ in range(50)]
    assert {"error", "stall", "reset", None} <= set(picks)


@pytest.mark.parametrize(
    "faults", [{"error_rate": 0.6, "reset_rate": 0.6}, {"error_rate": -1}, {"typo_rate": 0.1}]
)
def test_bad_fault_configs_are_refused(faults: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        FaultConfig().updated(faults)


# --- introspection --------------------------------------------------------------------------


async def test_state_changes_at_runtime_and_bad_keys_change_nothing(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    url = sandbox.url + "/_sandbox/state"
    status, state = await post(http, url, {"credits": 3, "faults": {"latency": 0.01}})
    assert status == 200
    assert (state["credits_left"], state["faults"]["latency"]) == (3, 0.01)
    for bad in ({"credits": 1, "no_such_option": 1}, {"faults": {"error_rate": 2}}, [1]):
        status, answer = await post(http, url, bad)
        assert status == 400
        assert "error" in answer
    state = await get(http, url)
    assert (state["credits_left"], state["faults"]["latency"], state["faults"]["error_rate"]) == (
        3,
        0.01,
        0,
    )


async def test_created_stats_and_reset(
    sandbox: SandboxHandle, connect: Any, http: aiohttp.ClientSession
) -> None:
    await send(connect(), invoice("R-1"))
    await send(connect(SESSION), invoice("R-2"))
    (record,) = (await get(http, sandbox.url + "/_sandbox/created"))["created"]
    assert set(record) >= {"invoice_id", "invoice_number", "request", "created_at"}
    assert record["invoice_number"] == "R-1"
    stats = await get(http, sandbox.url + "/_sandbox/stats")
    assert stats["requests"] == {f"POST {CREATE_PATH}": {"200": 1, "401": 1}}
    assert stats["credits_left"] is None
    status, _ = await post(http, sandbox.url + "/_sandbox/reset", {})
    assert status == 200
    assert (await get(http, sandbox.url + "/_sandbox/created")) == {"created": []}
    assert (await get(http, sandbox.url + "/_sandbox/stats"))["requests"] == {}
    assert isinstance(await send(connect(), invoice("R-1")), Synced)


# --- secrets and the runner -----------------------------------------------------------------


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


async def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="no sandbox"):
        await start_sandbox("nope")


def test_cli_arguments_become_options_and_faults() -> None:
    parser = argparse.ArgumentParser()
    configure_sandbox(parser)
    args = parser.parse_args(
        [
            "--provider",
            "billclap",
            "--token",
            "T1",
            "--token",
            "T2",
            "--credits",
            "9",
            "--option",
            "api_plan=false",
            "--option",
            "prefix=WEB-",
            "--stall-rate",
            "0.1",
            "--seed",
            "3",
        ]
    )
    assert (args.host, args.port) == ("127.0.0.1", 0)
    assert options_from_args(args) == {
        "tokens": ["T1", "T2"],
        "credits": 9,
        "api_plan": False,
        "prefix": "WEB-",
    }
    assert (args.stall_rate, args.seed, args.latency) == (0.1, 3, None)


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
