"""The adapter's account and customer caches: fetched once, refreshed when stale or gone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.testing.sandbox.billit.calls import created, invoice, requests, send
from worker.outcome import DeadLetter, Reason, Synced
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import SandboxHandle


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
