"""The real Refrens adapter against the Refrens sandbox on 127.0.0.1 (no database needed)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests import factories
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
from worker.providers.refrens.adapter import Refrens, RefrensOptions, build_request
from worker.providers.refrens.auth import AppSecretLogin
from worker.testing.sandbox.refrens.app import books_of
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

TOKEN = "static-refrens-token"
APP_ID, APP_SECRET = "acme-app", "acme-app-secret-value"
URL_KEY = "acme-traders"
INVOICES = f"/businesses/{URL_KEY}/invoices"
CUSTOMER = {
    "name": "Acme Traders",
    "phone": "+91 98765 43210",
    "email": "ap@acme.example",
    "tax_id": "29ABCDE1234F1Z5",
    "address": {
        "street": "123 MG Road",
        "city": "Bengaluru",
        "state": "Karnataka",
        "postal_code": "560001",
        "country": "IN",
    },
}


def invoice(number: str | None = "WEB-1", **changes: Any) -> dict[str, Any]:
    return factories.invoice(number, **({"customer": CUSTOMER} | copy.deepcopy(changes)))


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
    handle = await start_sandbox(
        "refrens", tokens=[TOKEN], apps={APP_ID: APP_SECRET}, url_keys=[URL_KEY, "other-biz"]
    )
    yield handle
    await handle.stop()


@pytest.fixture
async def adapters() -> AsyncIterator[list[Refrens]]:
    made: list[Refrens] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def connect(sandbox: SandboxHandle, adapters: list[Refrens]) -> Any:
    def _connect(
        token: str | None = TOKEN, total: float = 5.0, base_url: str | None = None, **options: Any
    ) -> Refrens:
        settings = RefrensOptions.model_validate({"url_key": URL_KEY, **options})
        adapter = Refrens(
            Credentials(base_url=base_url or sandbox.url + "/", token=token),
            settings,
            HttpTimeouts(connect=1.0, total=total),
        )
        adapters.append(adapter)
        return adapter

    return _connect


def login(connect: Any, **options: Any) -> Refrens:
    adapter: Refrens = connect(token=None, app_id=APP_ID, app_secret=APP_SECRET, **options)
    return adapter


def logins(adapter: Refrens) -> int:
    assert isinstance(adapter.bearer, AppSecretLogin)
    return adapter.bearer.logins


async def send(adapter: Refrens, doc: dict[str, Any], *, prior_unknown: bool = False) -> Outcome:
    return await adapter.create_invoice(attempt_for(doc, prior_unknown=prior_unknown))


def created(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return books_of(sandbox.app).created()


def requests(sandbox: SandboxHandle) -> dict[str, dict[str, int]]:
    return sandbox.state.stats.requests


# --- happy path -----------------------------------------------------------------------------


async def test_happy_path_stores_every_field(sandbox: SandboxHandle, connect: Any) -> None:
    options = {
        "billedTo": {"panNumber": "ABCDE1234F"},
        "email": {"to": {"name": "AP", "email": "ap@acme.example"}, "cc": []},
        "contact": {"email": "billing@seller.example", "phone": "+91 80 1234 5678"},
    }
    doc = invoice(
        "WEB-1",
        due_date="2026-07-15",
        lines=[
            {
                "name": "Consulting Service",
                "description": "July retainer",
                "quantity": 2,
                "unit_price": 1000,
                "tax_rate": 18,
                "price_includes_tax": False,
                "hsn": "998314",
                "discount": 5,
                "discount_type": "percent",
            },
            {
                "name": "Notebook",
                "quantity": 3,
                "unit_price": "45.50",
                "tax_rate": 12,
                "price_includes_tax": False,
            },
        ],
        charges=[{"name": "Packaging", "amount": 50, "tax_rate": 18, "hsn": "9985"}],
        provider_options=options,
    )
    outcome = await send(connect(), doc)
    assert isinstance(outcome, Synced), outcome
    (record,) = created(sandbox)
    assert outcome.provider_invoice_id == record["_id"]
    assert outcome.invoice_number == "WEB-1" == record["invoiceNumber"]
    assert outcome.link == record["share"]["link"]
    assert outcome.pdf_url == record["share"]["pdf"]
    assert outcome.recovered is False
    assert record["request"] == build_request(parse_invoice(doc))
    assert record["billedTo"] == {
        "name": "Acme Traders",
        "street": "123 MG Road",
        "city": "Bengaluru",
        "pincode": "560001",
        "gstState": "29",
        "state": "Karnataka",
        "country": "IN",
        "panNumber": "ABCDE1234F",
        "gstin": "29ABCDE1234F1Z5",
        "phone": "+91 98765 43210",
        "email": "ap@acme.example",
    }
    assert (record["invoiceDate"], record["dueDate"]) == (
        "2026-07-01T00:00:00.000Z",
        "2026-07-15T00:00:00.000Z",
    )
    assert (record["billType"], record["currency"], record["status"]) == (
        "INVOICE",
        "INR",
        "UNPAID",
    )
    assert record["contact"] == options["contact"]
    items = [
        (i["name"], i["rate"], i["quantity"], i.get("gstRate"), i.get("hsn"))
        for i in record["items"]
    ]
    assert items == [
        ("Consulting Service", 950, 2, 18, "998314"),
        ("Notebook", 45.5, 3, 12, None),
        ("Packaging", 50, 1, 18, "9985"),
    ]
    assert record["items"][0]["description"] == "July retainer"
    # 1900 + 18% = 2242; 136.50 + 12% = 152.88; 50 + 18% = 59.
    assert record["finalTotal"] == {
        "total": 2453.88,
        "amount": 2086.5,
        "subTotal": 2086.5,
        "igst": 367.38,
        "cgst": 183.69,
        "sgst": 183.69,
        "discount": 0,
    }
    assert record["igst"] is False
    assert books_of(sandbox.app).emails == [{"invoice": record["_id"], "email": options["email"]}]


async def test_tax_inclusive_prices_and_invoice_discount_total_right(
    sandbox: SandboxHandle, connect: Any
) -> None:
    doc = invoice(
        "WEB-2", charges=[{"name": "Packaging", "amount": 50, "tax_rate": 18}], discount=9
    )
    assert isinstance(await send(connect(), doc), Synced)
    # 1000 incl. 18% + 59 of packaging - 9 = 1050, to the paisa.
    assert created(sandbox)[0]["finalTotal"]["total"] == 1050


async def test_only_the_bearer_header_is_sent(sandbox: SandboxHandle, connect: Any) -> None:
    await send(connect(), invoice())
    stats = sandbox.state.stats.as_dict()
    assert stats["auth_headers"] == {"authorization": 1}
    assert stats["requests"] == {f"POST {INVOICES}": {"200": 1}}


async def test_create_status_201_is_synced_too(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"create_status": 201})
    assert isinstance(await send(connect(), invoice()), Synced)


# --- app-secret login ------------------------------------------------------------------------


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


# --- account and data errors ----------------------------------------------------------------


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


# --- never duplicate: reconciliation --------------------------------------------------------


async def test_commit_then_stall_is_recovered_by_lookup(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 10}})
    adapter = connect(total=0.5)
    started = time.monotonic()
    lost = await send(adapter, invoice("ST-1"))
    assert time.monotonic() - started < 3
    assert isinstance(lost, Retry)
    assert lost.outcome_unknown is True
    sandbox.state.change({"faults": {"stall_rate": 0}})

    outcome = await send(adapter, invoice("ST-1"), prior_unknown=True)

    (record,) = created(sandbox)
    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert outcome.provider_invoice_id == record["_id"]
    assert (outcome.link, outcome.pdf_url) == (record["share"]["link"], record["share"]["pdf"])
    assert requests(sandbox)[f"GET {INVOICES}"] == {"200": 1}


@pytest.mark.parametrize("status", [400, 409])
async def test_lookup_falls_back_to_newest_pages_when_filters_are_ignored(
    sandbox: SandboxHandle, connect: Any, status: int
) -> None:
    sandbox.state.change({"ignore_filters": True, "max_limit": 4, "duplicate_status": status})
    adapter = connect(lookup_page_size=10, lookup_pages=5)
    numbers = [*(f"OLD-{i}" for i in range(5)), "MINE-1", *(f"NEW-{i}" for i in range(6))]
    for number in numbers:
        assert isinstance(await send(adapter, invoice(number)), Synced)

    outcome = await send(adapter, invoice("MINE-1"), prior_unknown=True)

    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert outcome.provider_invoice_id == created(sandbox)[5]["_id"]
    # The ignored filter gives the 4 oldest (capped from 10); then newest pages of 4: the
    # 4 newest, then 2 more new and ours.
    assert requests(sandbox)[f"GET {INVOICES}"] == {"200": 3}
    assert len(created(sandbox)) == 12


async def test_lookup_gives_up_after_its_pages(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"ignore_filters": True, "max_limit": 3})
    adapter = connect(lookup_page_size=3, lookup_pages=2)
    numbers = [*(f"OLD-{i}" for i in range(4)), "MINE-2", *(f"NEW-{i}" for i in range(8))]
    for number in numbers:
        assert isinstance(await send(adapter, invoice(number)), Synced)

    outcome = await send(adapter, invoice("MINE-2"), prior_unknown=True)

    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.DUPLICATE
    assert "no invoice numbered 'MINE-2' among 9 invoices read in 3 requests" in outcome.error
    assert len(created(sandbox)) == 13


async def test_number_held_by_another_customer_is_not_claimed(
    sandbox: SandboxHandle, connect: Any
) -> None:
    other = invoice("X-1", customer={**CUSTOMER, "name": "Someone Else"})
    assert isinstance(await send(connect(), other), Synced)
    outcome = await send(connect(), invoice("X-1"), prior_unknown=True)
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.DUPLICATE
    assert "billed to 'someone else', not 'acme traders'" in outcome.error


async def test_reconciling_with_login_after_expiry(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = login(connect)
    assert isinstance(await send(adapter, invoice("LE-1")), Synced)
    books_of(sandbox.app).issuer.expire_all()
    outcome = await send(adapter, invoice("LE-1"), prior_unknown=True)
    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert logins(adapter) == 2


# --- faults ---------------------------------------------------------------------------------


async def test_429_carries_retry_after(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"rate429_rate": 1, "retry_after": 7}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, RateLimited), outcome
    assert outcome.after == 7.0
    assert outcome.response["name"] == "TooManyRequests"
    assert created(sandbox) == []


async def test_server_error_is_an_unknown_outcome(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"error_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry), outcome
    assert (outcome.outcome_unknown, outcome.http_status) == (True, 500)
    assert outcome.response["className"] == "general-error"


async def test_reset_is_an_unknown_outcome(sandbox: SandboxHandle, connect: Any) -> None:
    sandbox.state.change({"faults": {"reset_rate": 1}})
    outcome = await send(connect(), invoice())
    assert isinstance(outcome, Retry), outcome
    assert outcome.outcome_unknown is True
    assert created(sandbox) == []


async def test_unreachable_refrens_is_a_clean_retry(connect: Any) -> None:
    outcome = await send(connect(base_url="http://127.0.0.1:9"), invoice())
    assert isinstance(outcome, Retry), outcome
    assert outcome.outcome_unknown is False


# --- secrets --------------------------------------------------------------------------------

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


# --- a lookup that fails ------------------------------------------------------------------


def conflict_then(status: int) -> web.Application:
    """A Refrens that refuses the number, then fails the lookup with ``status``."""

    async def create(_request: web.Request) -> web.Response:
        body = {"name": "Conflict", "message": "exists", "code": 409, "className": "conflict"}
        return web.json_response(body, status=409)

    async def find(_request: web.Request) -> web.Response:
        body = {"name": "Failure", "message": "lookup failed", "code": status}
        return web.json_response(body, status=status, headers={"Retry-After": "5"})

    app = web.Application()
    app.router.add_post(INVOICES, create)
    app.router.add_get(INVOICES, find)
    return app


@pytest.mark.parametrize(
    ("status", "kind"), [(500, Retry), (400, Retry), (429, RateLimited), (403, PauseAccount)]
)
async def test_failed_lookup_is_tried_again_later(
    adapters: list[Refrens], status: int, kind: type
) -> None:
    runner = web.AppRunner(conflict_then(status))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        adapter = Refrens(
            Credentials(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", token=TOKEN),
            RefrensOptions(url_key=URL_KEY),
            HttpTimeouts(connect=1, total=5),
        )
        adapters.append(adapter)
        outcome = await send(adapter, invoice("LF-1"), prior_unknown=True)
    finally:
        await runner.cleanup()
    assert isinstance(outcome, kind), outcome
    if isinstance(outcome, Retry):
        # Not a verdict on the invoice: the row stays "outcome unknown" and reconciles again.
        assert "will look again" in outcome.error
    if isinstance(outcome, RateLimited):
        assert outcome.after == 5.0


async def test_options_naming_an_owned_field_are_refused_unsent(
    sandbox: SandboxHandle, connect: Any
) -> None:
    outcome = await send(connect(), invoice(provider_options={"invoiceNumber": None}))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.INVALID_PAYLOAD
    assert outcome.error.startswith("provider_options.invoiceNumber:")
    assert created(sandbox) == []
    assert requests(sandbox) == {}


async def test_options_adding_a_field_are_sent(sandbox: SandboxHandle, connect: Any) -> None:
    mail = {"to": {"name": "AP", "email": "ap@acme.example"}}
    outcome = await send(connect(), invoice(provider_options={"email": mail}))
    assert isinstance(outcome, Synced), outcome
    assert len(created(sandbox)) == 1
