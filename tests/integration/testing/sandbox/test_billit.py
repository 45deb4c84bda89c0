"""The real Billit adapter against the Billit sandbox on 127.0.0.1 (no database needed)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

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
from worker.providers.billit.adapter import Billit
from worker.providers.billit.mapping import gross_total, tag_for
from worker.providers.billit.options import BillitOptions
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

TOKEN = "billit-test-token-91f2"
INVOICE_ROUTES = ("POST /v1/invoices",)


def invoice(**changes: Any) -> dict[str, Any]:
    """A Greek invoice to a domestic business, paid in full: every canonical field Billit maps."""
    doc: dict[str, Any] = {
        "type": "invoice",
        "number": "WEB-1",
        "issue_date": "2026-07-01",
        "due_date": "2026-07-15",
        "currency": "EUR",
        "customer": {
            "name": "Acme AE",
            "phone": "+30 210 1234567",
            "email": "ap@acme.example",
            "tax_id": "EL 123456789",
            "address": {
                "street": "Ermou 1",
                "city": "Athens",
                "postal_code": "10563",
                "country": "GR",
            },
        },
        "lines": [
            {
                "name": "Consulting",
                "description": "July retainer",
                "quantity": 2,
                "unit_price": 100,
                "tax_rate": 24,
                "price_includes_tax": False,
                "discount": 10,
                "discount_type": "percent",
            },
            {
                "name": "Book",
                "quantity": 1,
                "unit_price": "11.30",
                "tax_rate": 6,
                "discount": "0.70",
                "discount_type": "amount",
            },
        ],
        "charges": [{"name": "Shipping", "amount": 5, "tax_rate": 24}],
        "amount_paid": "240.00",
    }
    doc.update(copy.deepcopy(changes))
    return doc


def attempt_for(
    doc: dict[str, Any],
    *,
    key: str = "key-1",
    outbox_id: int = 1,
    prior_unknown: bool = False,
    send_by: float | None = None,
) -> Attempt:
    return Attempt(
        outbox_id=outbox_id,
        account="athens",
        idempotency_key=key,
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=prior_unknown,
        send_by=send_by,
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("billit", tokens=[TOKEN])
    yield handle
    await handle.stop()


@pytest.fixture
async def adapters() -> AsyncIterator[list[Billit]]:
    made: list[Billit] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def connect(sandbox: SandboxHandle, adapters: list[Billit]) -> Any:
    def _connect(
        token: str = TOKEN, total: float = 5.0, base: str | None = None, **options: Any
    ) -> Billit:
        adapter = Billit(
            Credentials(base_url=base or sandbox.url + "/v1", token=token),
            HttpTimeouts(connect=1.0, total=total),
            BillitOptions.model_validate({"invoice_type_id": 1, **options}),
        )
        adapters.append(adapter)
        return adapter

    return _connect


async def send(adapter: Billit, doc: dict[str, Any], **kwargs: Any) -> Outcome:
    return await adapter.create_invoice(attempt_for(doc, **kwargs))


def requests(sandbox: SandboxHandle, route: str) -> int:
    return sum(sandbox.state.stats.requests.get(route, {}).values())


def created(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return books_of(sandbox.app).created()


# --- happy path -----------------------------------------------------------------------------


async def test_happy_path_stores_every_field(sandbox: SandboxHandle, connect: Any) -> None:
    outcome = await send(connect(), invoice(), key="order-77")
    assert isinstance(outcome, Synced), outcome
    (record,) = created(sandbox)
    assert outcome.provider_invoice_id == record["uuid"]
    assert outcome.invoice_number == "A-1" == record["invoice_number"]
    assert outcome.link == record["permalink"]
    assert outcome.pdf_url == record["permalink"] + "/pdf"
    assert not outcome.recovered
    (customer,) = books_of(sandbox.app).ledger.customers.values()
    assert customer == {
        "id": customer["id"],
        "isCompany": True,
        "company": "Acme AE",
        "customerType": 1,
        "country": "GR",
        "vatId": "EL 123456789",
        "streetAddress": "Ermou 1",
        "postalCode": "10563",
        "city": "Athens",
        "phone": "+30 210 1234567",
        "email": "ap@acme.example",
    }
    assert record["request"] == {
        "invoiceDate": "2026-07-01",
        "invoiceTypeId": 1,
        "dateExpires": "2026-07-15",
        "customerId": customer["id"],
        "billerId": 1,
        "products": [
            {
                "details": "Consulting\nJuly retainer",
                "vatId": 1,
                "price": 100,
                "quantity": 2,
                "discount": 10,
            },
            # 11.30 - 0.70 incl. 6% VAT = 10.00 net.
            {"details": "Book", "vatId": 3, "price": 10, "quantity": 1},
            {"details": "Shipping", "vatId": 1, "price": 5, "quantity": 1},
        ],
        "isPaid": True,
        "paymentMethod": [1],
        "tags": ["invoice-sync:order-77"],
        "sendMail": False,
    }
    # 180 + 43.20 VAT, 10 + 0.60, 5 + 1.20: Billit's total is the one we computed.
    assert record["finalAmount"] == 240.0 == float(gross_total(parse_invoice(invoice())))
    assert record["tags"] == ["invoice-sync:order-77"]


async def test_base_url_with_or_without_v1(sandbox: SandboxHandle, connect: Any) -> None:
    for base in (sandbox.url, sandbox.url + "/v1/"):
        assert isinstance(await send(connect(base=base), invoice()), Synced)
    assert len(created(sandbox)) == 2


async def test_options_reach_the_body(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = connect(payment_method_id=2, measurement_unit=1, send_mail=True)
    doc = invoice(provider_options={"mydataInvoiceType": "1.1"})
    assert isinstance(await send(adapter, doc), Synced)
    body = created(sandbox)[0]["request"]
    assert (body["paymentMethod"], body["sendMail"], body["mydataInvoiceType"]) == (
        [2],
        True,
        "1.1",
    )
    assert {row["measurementUnit"] for row in body["products"]} == {1}


async def test_series_number_per_invoice_type(sandbox: SandboxHandle, connect: Any) -> None:
    adapter = connect(invoice_type_ids={"credit_note": 2})
    numbers = []
    for kind in ("invoice", "credit_note", "invoice"):
        outcome = await send(adapter, invoice(type=kind))
        assert isinstance(outcome, Synced), outcome
        numbers.append(outcome.invoice_number)
    assert numbers == ["A-1", "CN-1", "A-2"]


async def test_cash_sale_on_a_retail_type_needs_no_customer(
    sandbox: SandboxHandle, connect: Any
) -> None:
    doc = invoice(customer=None, cash_sale=True, provider_options={"invoiceTypeId": 3})
    outcome = await send(connect(), doc)
    assert isinstance(outcome, Synced), outcome
    assert outcome.invoice_number == "R-1"
    assert requests(sandbox, "GET /v1/customers") == 0
    assert "customerId" not in created(sandbox)[0]["request"]


# --- caches ---------------------------------------------------------------------------------


async def test_one_account_fetch_and_one_customer_create_for_many_invoices(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    outcomes = await asyncio.gather(
        *(send(adapter, invoice(), key=f"k-{i}", outbox_id=i) for i in range(6))
    )
    assert all(isinstance(o, Synced) for o in outcomes), outcomes
    assert requests(sandbox, "GET /v1/account") == 1
    assert requests(sandbox, "POST /v1/customers") == 1
    # The first invoice searched by tax id, e-mail and phone before creating; the rest hit
    # the cache.
    assert requests(sandbox, "GET /v1/customers") == 3
    assert len({r["customerId"] for r in created(sandbox)}) == 1
    assert adapter.account.fetches == 1


async def test_account_is_refetched_after_the_refresh_interval(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect(account_refresh=0)
    for index in range(2):
        assert isinstance(await send(adapter, invoice(), outbox_id=index), Synced)
    assert requests(sandbox, "GET /v1/account") == 2


async def test_existing_customer_is_found_by_tax_id_email_or_phone(
    sandbox: SandboxHandle, connect: Any
) -> None:
    books = books_of(sandbox.app)
    base = {"isCompany": True, "customerType": 1, "country": "GR"}
    # A loose match on q that is not the customer: the VAT id only contains ours.
    decoy = books.create_customer({**base, "company": "Decoy", "vatId": "EL1234567890"})
    by_vat = books.create_customer({**base, "company": "Acme", "vatId": "EL123456789"})
    by_mail = books.create_customer({**base, "company": "Mail", "email": "AP@beta.example"})
    by_phone = books.create_customer({**base, "company": "Tel", "mobile": "6912345678"})
    adapter = connect()
    cases = [
        ({"name": "Acme AE", "tax_id": "123456789"}, by_vat),
        ({"name": "Beta", "email": "ap@beta.example"}, by_mail),
        ({"name": "Gamma", "phone": "+30 691 234 5678"}, by_phone),
    ]
    for customer, expected in cases:
        assert isinstance(await send(adapter, invoice(customer=customer)), Synced)
        assert created(sandbox)[-1]["customerId"] == expected["id"]
    assert decoy["id"] not in {r["customerId"] for r in created(sandbox)}
    assert requests(sandbox, "POST /v1/customers") == 0


async def test_customer_id_given_is_used_as_is(sandbox: SandboxHandle, connect: Any) -> None:
    books = books_of(sandbox.app)
    known = books.create_customer(
        {"isCompany": False, "company": "Known", "customerType": 4, "country": "GR"}
    )
    assert isinstance(
        await send(connect(), invoice(customer={"id": known["id"], "name": "Known"})), Synced
    )
    assert created(sandbox)[0]["customerId"] == known["id"]
    assert requests(sandbox, "GET /v1/customers") == 0


@pytest.mark.parametrize(
    ("customer", "expected_type"),
    [
        ({"name": "Private", "phone": "2101111111"}, 4),
        ({"name": "Berlin GmbH", "tax_id": "DE811111111", "address": {"country": "DE"}}, 2),
        ({"name": "Pune Ltd", "tax_id": "27AAAAA0000A1Z5", "address": {"country": "IN"}}, 3),
    ],
)
async def test_customer_type_follows_country_and_tax_id(
    sandbox: SandboxHandle, connect: Any, customer: dict[str, Any], expected_type: int
) -> None:
    assert isinstance(await send(connect(), invoice(customer=customer)), Synced)
    (stored,) = books_of(sandbox.app).ledger.customers.values()
    assert stored["customerType"] == expected_type
    assert stored["isCompany"] is (expected_type != 4)


async def test_stale_vat_ids_refetch_the_account_and_send_again(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    assert isinstance(await send(adapter, invoice(), outbox_id=1), Synced)
    vats = [{**vat, "id": vat["id"] + 10} for vat in books_of(sandbox.app).options.vats]
    sandbox.state.change({"vats": vats})
    outcome = await send(adapter, invoice(), outbox_id=2)
    assert isinstance(outcome, Synced), outcome
    assert sandbox.state.stats.requests["POST /v1/invoices"] == {"201": 2, "422": 1}
    assert requests(sandbox, "GET /v1/account") == 2
    assert created(sandbox)[-1]["request"]["products"][0]["vatId"] == 11


async def test_a_cached_customer_deleted_in_billit_is_created_again(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    assert isinstance(await send(adapter, invoice(), outbox_id=1), Synced)
    books_of(sandbox.app).ledger.customers.clear()  # deleted in Billit's web app
    outcome = await send(adapter, invoice(), outbox_id=2)
    assert isinstance(outcome, Synced), outcome
    assert sandbox.state.stats.requests["POST /v1/invoices"] == {"201": 2, "422": 1}
    assert requests(sandbox, "POST /v1/customers") == 2
    first, second = created(sandbox)
    assert first["customerId"] != second["customerId"]
    assert second["customerId"] in books_of(sandbox.app).ledger.customers


async def test_an_unknown_customer_id_from_the_producer_is_rejected(
    sandbox: SandboxHandle, connect: Any
) -> None:
    outcome = await send(connect(), invoice(customer={"id": 424242, "name": "Ghost"}))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.REJECTED
    assert "customerId: The selected customer id is invalid." in outcome.error
    assert requests(sandbox, "POST /v1/invoices") == 1


# --- refusals -------------------------------------------------------------------------------


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


# --- unknown outcomes and the tag scan ------------------------------------------------------


async def warm(adapter: Billit) -> None:
    """One invoice through, so the account and the customer are cached and the next attempt's
    only request is the create itself."""
    assert isinstance(await send(adapter, invoice(), key="warm", outbox_id=99), Synced)


async def test_commit_then_stall_then_recovered_by_the_tag(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect(total=0.5)
    await warm(adapter)
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 5}})
    started = time.monotonic()
    lost = await send(adapter, invoice(), key="stall-1")
    assert time.monotonic() - started < 3
    assert isinstance(lost, Retry), lost
    assert lost.outcome_unknown is True
    sandbox.state.change({"faults": {"stall_rate": 0}})
    with capture_logs() as logs:
        outcome = await send(adapter, invoice(), key="stall-1", prior_unknown=True)
    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    records = created(sandbox)
    assert [r["tags"] for r in records] == [["invoice-sync:warm"], ["invoice-sync:stall-1"]]
    assert outcome.provider_invoice_id == records[1]["uuid"]
    assert outcome.invoice_number == "A-2"
    assert outcome.pdf_url == records[1]["permalink"] + "/pdf"
    assert any(log["event"] == "provider.billit.recovered" for log in logs)
    # The recovery read one page and one invoice, and created nothing.
    routes = [r["route"] for r in sandbox.state.stats.recent]
    assert routes[-2:] == ["GET /v1/invoices", f"GET /v1/invoices/{records[1]['uuid']}"]


async def test_prior_unknown_with_nothing_created_sends_once(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    await warm(adapter)
    outcome = await send(adapter, invoice(), key="never-arrived", prior_unknown=True)
    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is False
    assert [r["tags"] for r in created(sandbox)] == [
        ["invoice-sync:warm"],
        ["invoice-sync:never-arrived"],
    ]


async def test_scan_reads_only_candidates_and_pages_back(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect(reconcile_per_page=2)
    target = await send(adapter, invoice(), key="target", outbox_id=1)
    assert isinstance(target, Synced)
    # Newer invoices that cannot be ours: another customer, another date, another amount.
    others = [
        invoice(customer={"name": "Other", "tax_id": "EL999999999"}),
        invoice(issue_date="2026-07-02"),
        invoice(charges=[]),
    ]
    for index, doc in enumerate(others):
        assert isinstance(await send(adapter, doc, key=f"o-{index}", outbox_id=10 + index), Synced)
    sandbox.state.stats.clear()
    outcome = await send(adapter, invoice(), key="target", outbox_id=1, prior_unknown=True)
    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert outcome.provider_invoice_id == target.provider_invoice_id
    assert requests(sandbox, "GET /v1/invoices") == 2  # two pages of two
    fetched = [r for r in sandbox.state.stats.requests if r.startswith("GET /v1/invoices/")]
    assert fetched == [f"GET /v1/invoices/{target.provider_invoice_id}"]
    assert len(created(sandbox)) == 4


async def test_scan_that_cannot_finish_is_ambiguous(sandbox: SandboxHandle, connect: Any) -> None:
    other_replica = connect()
    for index in range(2):
        assert isinstance(await send(other_replica, invoice(), key=f"twin-{index}"), Synced)
    adapter = connect(reconcile_details=1)
    outcome = await send(adapter, invoice(), key="lost", prior_unknown=True)
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.AMBIGUOUS
    assert tag_for("lost") in outcome.error
    assert len(created(sandbox)) == 2


async def test_scan_skips_invoices_whose_tags_it_knows(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect(total=0.5)
    await warm(adapter)
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 5}})
    assert isinstance(await send(adapter, invoice(), key="lost", outbox_id=1), Retry)
    sandbox.state.change({"faults": {"stall_rate": 0}})
    for index in range(2):  # newer look-alikes, answered: their tags are known
        assert isinstance(await send(adapter, invoice(), key=f"n-{index}", outbox_id=2), Synced)
    lost_uuid = created(sandbox)[1]["uuid"]

    def detail_fetches() -> int:
        routes = sandbox.state.stats.requests
        return sum(sum(v.values()) for r, v in routes.items() if r.startswith("GET /v1/invoices/"))

    outcome = await send(adapter, invoice(), key="lost", outbox_id=1, prior_unknown=True)
    assert isinstance(outcome, Synced), outcome
    assert (outcome.recovered, outcome.provider_invoice_id) == (True, lost_uuid)
    assert detail_fetches() == 1
    # Another replica knows none of them: it reads the newer two before finding it.
    sandbox.state.stats.clear()
    fresh = await send(connect(), invoice(), key="lost", outbox_id=1, prior_unknown=True)
    assert isinstance(fresh, Synced), fresh
    assert fresh.provider_invoice_id == lost_uuid
    assert detail_fetches() == 3
    assert len(created(sandbox)) == 4


async def test_a_scan_that_outlasts_the_lease_sends_nothing(
    sandbox: SandboxHandle, connect: Any
) -> None:
    adapter = connect()
    await warm(adapter)
    # The row's lease (less the request timeout) ends while the scan reads: by then another
    # worker may have taken the row, so this attempt must not create the invoice as well.
    late = await send(adapter, invoice(), key="late", prior_unknown=True,
                      send_by=time.monotonic())  # fmt: skip
    assert isinstance(late, Retry), late
    assert late.outcome_unknown is False
    assert "lease" in late.error
    assert requests(sandbox, "GET /v1/invoices") == 1  # it did scan
    assert [r["tags"] for r in created(sandbox)] == [["invoice-sync:warm"]]
    # With time left, the same attempt sends.
    sent = await send(adapter, invoice(), key="late", prior_unknown=True,
                      send_by=time.monotonic() + 60)  # fmt: skip
    assert isinstance(sent, Synced), sent
    assert len(created(sandbox)) == 2


async def test_provider_option_tags_are_refused_unsent(
    sandbox: SandboxHandle, connect: Any
) -> None:
    # Our tag is what a scan finds the invoice by: options cannot replace or remove it.
    doc = invoice(provider_options={"tags": ["web-shop"]})
    outcome = await send(connect(), doc, key="k-tags")
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.INVALID_PAYLOAD
    assert outcome.error.startswith("provider_options.tags:")
    assert created(sandbox) == []
    assert requests(sandbox, "POST /v1/invoices") == 0


async def test_long_keys_are_tagged_by_hash_and_still_recovered(
    sandbox: SandboxHandle, connect: Any
) -> None:
    key = "order/" + "x" * 200
    adapter = connect(total=0.5)
    await warm(adapter)
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 5}})
    assert isinstance(await send(adapter, invoice(), key=key), Retry)
    sandbox.state.change({"faults": {"stall_rate": 0}})
    outcome = await send(adapter, invoice(), key=key, prior_unknown=True)
    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered
    tag = created(sandbox)[-1]["tags"][0]
    assert tag == tag_for(key)
    assert len(tag) < 80


# --- secrets --------------------------------------------------------------------------------


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


def test_gross_total_matches_the_documented_example() -> None:
    assert gross_total(parse_invoice(invoice())) == Decimal("240.00")


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
