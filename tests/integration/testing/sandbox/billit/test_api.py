"""The Billit sandbox speaks Billit's API as documented: raw HTTP, no adapter."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from worker.cli.tool_arguments import configure_sandbox
from worker.testing.sandbox import PROFILES, SANDBOXES
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import (
    SandboxHandle,
    options_from_args,
    start_sandbox,
)

TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CUSTOMER = {"isCompany": True, "company": "Acme AE", "customerType": 1, "country": "GR"}


def product(**changes: Any) -> dict[str, Any]:
    return {"details": "Thing", "vatId": 1, "price": 10, "quantity": 1, **changes}


# Raw HTTP with a token of its own: this sandbox replaces the folder's (conftest.py).
@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("billit", tokens=[TOKEN])
    yield handle
    await handle.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    async with http.request(
        method, url, json=body, headers=AUTH if headers is None else headers, params=params
    ) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def new_invoice(http: aiohttp.ClientSession, url: str, **changes: Any) -> dict[str, Any]:
    status, customer, _ = await call(http, "POST", url + "/v1/customers", CUSTOMER)
    assert status == 201
    body = {
        "invoiceDate": "2026-07-01",
        "invoiceTypeId": 1,
        "customerId": customer["data"]["id"],
        "products": [product()],
        "tags": ["t-1"],
        **changes,
    }
    status, answer, _ = await call(http, "POST", url + "/v1/invoices", body)
    assert status == 201, answer
    data: dict[str, Any] = answer["data"]
    return data


async def test_credentials_check_and_401_shape(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, "POST", sandbox.url + "/v1")
    assert (status, body) == (200, {"msg": "Hello from the Billit API"})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, body, _ = await call(http, "GET", sandbox.url + "/v1/account", headers=headers)
        assert status == 401
        assert body == {
            "statusCode": 401,
            "error": "Unauthorized",
            "message": "Authorization Required",
            "data": None,
        }


async def test_account_relations_and_flags(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, "GET", sandbox.url + "/v1/account")
    assert status == 200
    data = body["data"]
    assert (data["isBlocked"], data["isSuspended"]) == (False, False)
    relations = data["relations"]
    assert set(relations) == {"biller", "paymentMethods", "vats", "settings", "subscription"}
    assert relations["vats"][0] == {"id": 1, "name": "24%", "value": 24}
    assert relations["subscription"]["status"] == "active"
    sandbox.state.change({"blocked": True, "subscription_active": False})
    _, body, _ = await call(http, "GET", sandbox.url + "/v1/account")
    assert body["data"]["isBlocked"] is True
    assert body["data"]["relations"]["subscription"]["status"] == "expired"
    status, body, _ = await call(http, "POST", sandbox.url + "/v1/customers", CUSTOMER)
    assert (status, body["error"]) == (403, "Forbidden")


async def test_unknown_paths_and_methods_answer_in_billits_shape(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, "GET", sandbox.url + "/v1/nothing")
    assert (status, body["statusCode"], body["message"]) == (404, 404, "Resource not found")
    status, body, _ = await call(http, "DELETE", sandbox.url + "/v1/invoices")
    assert (status, body["statusCode"], body["error"]) == (405, 405, "Method Not Allowed")
    status, body, _ = await call(http, "GET", sandbox.url + "/v1/invoices/no-such-uuid")
    assert (status, body["message"]) == (404, "Resource not found")


async def test_customer_validation_names_each_field(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    bad = {"isCompany": "yes", "customerType": 9, "country": "Greece", "email": "nope"}
    status, body, _ = await call(http, "POST", sandbox.url + "/v1/customers", bad)
    assert status == 422
    assert body["statusCode"] == 422
    assert body["errors"] == {
        "isCompany": ["The is company field must be true or false."],
        "company": ["The company field is required."],
        "customerType": ["The selected customer type is invalid."],
        "country": ["The selected country is invalid."],
        "email": ["The email must be a valid email address."],
    }
    assert books_of(sandbox.app).ledger.customers == {}


async def test_customer_search_covers_vat_phone_and_email(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    url = sandbox.url + "/v1/customers"
    extra = {"vatId": "EL123456789", "phone": "2101234567", "email": "ap@acme.example"}
    status, created, _ = await call(http, "POST", url, {**CUSTOMER, **extra})
    assert status == 201
    for q in ("123456789", "210123", "ACME.example"):
        _, found, _ = await call(http, "GET", url, params={"q": q})
        assert [c["id"] for c in found["data"]] == [created["data"]["id"]]
    _, found, _ = await call(http, "GET", url, params={"q": "Acme AE"})
    assert found["data"] == []  # the name is not searched
    assert found["meta"]["total"] == 0


async def test_invoice_validation_names_each_field(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    body = {
        "invoiceDate": "01/07/2026",
        "invoiceTypeId": 999,
        "customerId": 12345,
        "products": [
            {"vatId": 99, "price": -1, "quantity": 0, "discount": 101},
            "not a row",
        ],
        "isPaid": True,
        "tags": ["x" * 256],
    }
    status, answer, _ = await call(http, "POST", sandbox.url + "/v1/invoices", body)
    assert status == 422
    assert answer["errors"] == {
        "invoiceDate": ["The invoice date does not match the format Y-m-d."],
        "invoiceTypeId": ["The selected invoice type id is invalid."],
        "customerId": ["The selected customer id is invalid."],
        "products.0.details": ["The products.0.details field is required."],
        "products.0.vatId": ["The selected products.0.vatId is invalid."],
        "products.0.price": ["The products.0.price must be at least 0."],
        "products.0.quantity": ["The products.0.quantity must be greater than 0."],
        "products.0.discount": ["The products.0.discount must not be greater than 100."],
        "products.1": ["The products.1 must be an array."],
        "paymentMethod": ["The payment method field is required when is paid is true."],
        "tags.0": ["The tags.0 must not be greater than 255 characters."],
    }
    status, answer, _ = await call(http, "POST", sandbox.url + "/v1/invoices", {})
    assert set(answer["errors"]) == {"invoiceDate", "invoiceTypeId", "customerId", "products"}
    assert books_of(sandbox.app).created() == []


async def test_created_invoice_shape_numbers_and_totals(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    products = [product(price=100, quantity=2, discount=10), product(vatId=3, price="9.99")]
    first = await new_invoice(http, sandbox.url, products=products)
    assert first["number"] == 1
    assert first["type"] == {"id": 1, "series": "A", "name": "Sales invoice"}
    assert first["permalink"].endswith(first["uuid"])
    assert first["tags"] == [{"id": 1, "name": "t-1"}]
    # 180 + 43.20; 9.99 + 0.60
    assert (first["netAmount"], first["vatAmount"], first["finalAmount"]) == (189.99, 43.8, 233.79)
    second = await new_invoice(http, sandbox.url)
    credit = await new_invoice(http, sandbox.url, invoiceTypeId=2)
    assert (second["number"], credit["number"], credit["type"]["series"]) == (2, 1, "CN")


async def test_incidents_answer_400_with_an_insident_id(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"incidents": 1})
    status, _, _ = await call(http, "POST", sandbox.url + "/v1/customers", CUSTOMER)
    assert status == 201  # incidents concern invoice creates
    body = {"invoiceDate": "2026-07-01", "invoiceTypeId": 1, "customerId": 1, "products": []}
    status, answer, _ = await call(http, "POST", sandbox.url + "/v1/invoices", body)
    assert (status, answer["statusCode"]) == (400, 400)
    assert answer["data"]["insidentId"]
    status, _, _ = await call(http, "POST", sandbox.url + "/v1/invoices", body)
    assert status == 422  # the incident is spent; the empty products are refused now


async def test_list_is_newest_first_paged_and_without_tags(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    made = [await new_invoice(http, sandbox.url) for _ in range(3)]
    url = sandbox.url + "/v1/invoices"
    _, page1, _ = await call(http, "GET", url, params={"per_page": "2", "page": "1"})
    _, page2, _ = await call(http, "GET", url, params={"per_page": "2", "page": "2"})
    listed = [item["uuid"] for item in page1["data"] + page2["data"]]
    assert listed == [m["uuid"] for m in reversed(made)]
    assert all("tags" not in item for item in page1["data"] + page2["data"])
    assert page1["meta"] | {"path": None} == {
        "current_page": 1,
        "from": 1,
        "last_page": 2,
        "path": None,
        "per_page": 2,
        "to": 2,
        "total": 3,
    }
    assert page1["links"]["next"].endswith("page=2")
    assert page2["links"]["next"] is None
    _, capped, _ = await call(http, "GET", url, params={"per_page": "1000"})
    assert capped["meta"]["per_page"] == 250
    _, default, _ = await call(http, "GET", url)
    assert default["meta"]["per_page"] == 25
    _, one, _ = await call(http, "GET", f"{url}/{made[0]['uuid']}")
    assert one["data"]["tags"] == [{"id": 1, "name": "t-1"}]


async def test_rate_limit_is_a_fixed_window_per_token(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    books = books_of(sandbox.app)
    sandbox.state.change({"rate_limit_per_minute": 2, "tokens": [TOKEN, "other"]})
    url = sandbox.url + "/v1/account"
    status, _, headers = await call(http, "GET", url)
    assert (status, headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == (
        200,
        "2",
        "1",
    )
    await call(http, "GET", url)
    status, body, headers = await call(http, "GET", url)
    assert status == 429
    assert body == {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": "Too Many Attempts.",
        "data": None,
    }
    assert 55 <= int(headers["Retry-After"]) <= 60
    assert headers["X-RateLimit-Remaining"] == "0"
    # Another token has its own window; refused requests did not extend this one.
    status, _, _ = await call(http, "GET", url, headers={"Authorization": "Bearer other"})
    assert status == 200
    # When the window has passed, requests flow again.
    for window in books.ledger.windows.values():
        window.started -= 60
    status, _, _ = await call(http, "GET", url)
    assert status == 200


async def test_injected_faults_answer_in_billits_shape(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    sandbox.state.change({"faults": {"error_rate": 1}})
    status, body, _ = await call(http, "GET", sandbox.url + "/v1/account")
    assert (status, body["statusCode"], body["error"]) == (500, 500, "Internal Server Error")
    assert body["data"]["insidentId"]
    sandbox.state.change({"faults": {"error_rate": 0, "rate429_rate": 1, "retry_after": 3}})
    status, body, headers = await call(http, "GET", sandbox.url + "/v1/account")
    assert (status, body["message"], headers["Retry-After"]) == (429, "Too Many Attempts.", "3")


async def test_reset_forgets_invoices_customers_and_windows(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    await new_invoice(http, sandbox.url)
    sandbox.state.change({"blocked": True})
    sandbox.state.reset()
    books = books_of(sandbox.app)
    assert (books.created(), books.ledger.customers, books.ledger.windows) == ([], {}, {})
    assert books.options.blocked is False


def test_registered_with_a_profile_and_the_cli() -> None:
    assert "billit" in SANDBOXES
    profile = PROFILES["billit"]
    assert (profile.numbers_invoices, profile.reconciles) == (False, True)
    assert profile.identity({"tags": ["other", "invoice-sync:k-9"]}) == "k-9"
    assert profile.identity({"tags": []}) is None
    parser = argparse.ArgumentParser()
    configure_sandbox(parser)
    args = parser.parse_args(
        ["--provider", "billit", "--token", "T", "--option", "rate_limit_per_minute=5"]
    )
    assert options_from_args(args) == {"tokens": ["T"], "rate_limit_per_minute": 5}


async def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit_per_minute"):
        await start_sandbox("billit", rate_limit_per_minute=0)
