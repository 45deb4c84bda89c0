"""The Refrens sandbox's HTTP API as the document describes it, spoken to directly."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from worker.cli.tool_arguments import configure_sandbox
from worker.testing.sandbox.refrens.app import PROFILE, books_of
from worker.testing.sandbox.refrens.books import next_number
from worker.testing.sandbox.server import (
    SandboxHandle,
    options_from_args,
    start_sandbox,
)

TOKEN = "static-refrens-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INVOICES = "/businesses/acme/invoices"
# The document's example: two items, 18% and 12%.
DOC_ITEMS = [
    {"name": "Item one name", "rate": 100, "quantity": 2, "gstRate": 18},
    {"name": "Item two name", "rate": 200, "quantity": 6, "gstRate": 12},
]
CUSTOMER = {"name": "Customer Name", "country": "IN", "gstState": "29", "pincode": "560100"}


# Raw HTTP with a business of its own: this sandbox replaces the folder's (conftest.py).
@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox(
        "refrens", tokens=[TOKEN], apps={"app-1": "secret-1"}, url_keys=["acme"]
    )
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
    headers: dict[str, str] | None = None,
    *,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = body if isinstance(body, str) else None
    json_body = None if data is not None or body is None else body
    async with http.request(
        method, url, json=json_body, data=data, headers=headers, params=params
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def invoice(number: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"billedTo": CUSTOMER, "items": DOC_ITEMS, **changes}
    if number is not None:
        body["invoiceNumber"] = number
    return body


async def test_documented_example_totals(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, record = await call(
        http, "POST", sandbox.url + INVOICES, invoice("APP-2020-0004"), AUTH
    )
    assert status == 200
    assert record["finalTotal"] == {
        "total": 1580,
        "amount": 1400,
        "subTotal": 1400,
        "igst": 180,
        "cgst": 90,
        "sgst": 90,
        "discount": 0,
    }
    first = record["items"][0]
    assert {k: first[k] for k in ("igst", "cgst", "sgst", "subTotal", "amount", "total")} == {
        "igst": 36,
        "cgst": 18,
        "sgst": 18,
        "subTotal": 200,
        "amount": 200,
        "total": 236,
    }
    assert (record["billType"], record["status"], record["currency"]) == (
        "INVOICE",
        "UNPAID",
        "INR",
    )
    assert len(record["_id"]) == 24
    assert record["share"]["link"].endswith(f"/invoices/{record['_id']}")
    assert record["share"]["pdf"].endswith("/pdf")
    assert record["igst"] is False
    assert {"createdAt", "updatedAt", "client", "terms", "tags", "locale"} <= set(record)


async def test_bill_of_supply_carries_no_tax(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    body = invoice("B-1", invoiceType="BOS", billedTo={**CUSTOMER, "gstState": "07"})
    status, record = await call(http, "POST", sandbox.url + INVOICES, body, AUTH)
    assert status == 200
    assert record["finalTotal"]["total"] == 1400
    assert record["billType"] == "BOS"
    assert record["igst"] is True  # Delhi from Karnataka: inter-state


async def test_numbers_auto_increment_from_the_last_invoice(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    numbers = []
    for number in (None, "APP-2020-0004", None, None):
        status, record = await call(http, "POST", sandbox.url + INVOICES, invoice(number), AUTH)
        assert status == 200
        numbers.append(record["invoiceNumber"])
    assert numbers == ["INV-0001", "APP-2020-0004", "APP-2020-0005", "APP-2020-0006"]
    assert next_number("APP-2020-0999") == "APP-2020-1000"
    assert next_number("NODIGITS") == "NODIGITS-1"


@pytest.mark.parametrize(
    ("duplicate_status", "name", "message"),
    [
        (400, "BadRequest", "Invoice number D-1 already exists"),
        (409, "Conflict", "invoiceNumber: D-1 already exists."),
    ],
)
async def test_duplicate_numbers_are_refused(
    sandbox: SandboxHandle,
    http: aiohttp.ClientSession,
    duplicate_status: int,
    name: str,
    message: str,
) -> None:
    sandbox.state.change({"duplicate_status": duplicate_status})
    url = sandbox.url + INVOICES
    assert (await call(http, "POST", url, invoice("D-1"), AUTH))[0] == 200
    status, body = await call(http, "POST", url, invoice("D-1"), AUTH)
    assert status == duplicate_status
    assert (body["name"], body["message"], body["code"]) == (name, message, duplicate_status)
    assert len(books_of(sandbox.app).created()) == 1


async def test_validation_is_mongoose_shaped(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    body = {
        "billedTo": {"country": "India"},
        "items": [{"name": "X", "rate": -1, "quantity": "two"}],
        "invoiceDate": "yesterday",
        "currency": "rupees",
    }
    status, answer = await call(http, "POST", sandbox.url + INVOICES, body, AUTH)
    assert status == 400
    assert (answer["name"], answer["className"], answer["code"]) == (
        "BadRequest",
        "bad-request",
        400,
    )
    assert answer["message"].startswith("Invoice validation failed: ")
    assert answer["errors"]["billedTo.name"] == {
        "message": "Path `billedTo.name` is required.",
        "name": "ValidatorError",
        "kind": "required",
        "path": "billedTo.name",
    }
    assert set(answer["errors"]) == {
        "billedTo.name",
        "billedTo.country",
        "items.0.rate",
        "items.0.quantity",
        "invoiceDate",
        "currency",
    }
    assert answer["errors"]["items.0.quantity"]["name"] == "CastError"
    indian = {"billedTo": {"name": "N", "country": "IN"}, "items": DOC_ITEMS}
    status, answer = await call(http, "POST", sandbox.url + INVOICES, indian, AUTH)
    assert (status, list(answer["errors"])) == (400, ["billedTo.gstState"])
    status, answer = await call(http, "POST", sandbox.url + INVOICES, "{oops", AUTH)
    assert (status, answer["name"]) == (400, "BadRequest")
    assert books_of(sandbox.app).created() == []


async def test_login_answers_as_feathers(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    url = sandbox.url + "/authentication"
    good = {"strategy": "app-secret", "appId": "app-1", "appSecret": "secret-1"}
    status, body = await call(http, "POST", url, good)
    assert status == 201
    token = body["accessToken"]
    assert token.count(".") == 2
    assert body["authentication"]["payload"]["sub"] == "app-1"
    assert body["authentication"]["payload"]["exp"] > body["authentication"]["payload"]["iat"]
    status, _ = await call(
        http, "GET", sandbox.url + INVOICES, headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    status, body = await call(http, "POST", url, {**good, "appSecret": "nope"})
    assert (status, body) == (
        401,
        {
            "name": "NotAuthenticated",
            "message": "Invalid login",
            "code": 401,
            "className": "not-authenticated",
            "data": {"message": "Invalid login"},
            "errors": {},
        },
    )
    status, body = await call(http, "POST", url, {"appId": "app-1"})
    assert (status, body["name"]) == (400, "BadRequest")
    status, body = await call(http, "POST", url, {**good, "strategy": "local"})
    assert (status, body["name"]) == (401, "NotAuthenticated")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Not authenticated"),
        ({"Authorization": "Bearer not-a-jwt"}, "jwt malformed"),
        ({"Authorization": "Bearer aaa.bbb.ccc"}, "invalid signature"),
        ({"x-api-token": TOKEN}, "Not authenticated"),
    ],
)
async def test_bad_credentials_are_not_authenticated(
    sandbox: SandboxHandle, http: aiohttp.ClientSession, headers: dict[str, str], message: str
) -> None:
    status, body = await call(http, "POST", sandbox.url + INVOICES, invoice("A-1"), headers)
    assert (status, body["name"], body["message"]) == (401, "NotAuthenticated", message)


async def test_expired_token_says_so(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    login = {"strategy": "app-secret", "appId": "app-1", "appSecret": "secret-1"}
    _, body = await call(http, "POST", sandbox.url + "/authentication", login)
    books_of(sandbox.app).issuer.expire_all()
    headers = {"Authorization": f"Bearer {body['accessToken']}"}
    status, answer = await call(http, "GET", sandbox.url + INVOICES, headers=headers)
    assert (status, answer["message"], answer["data"]["name"]) == (
        401,
        "jwt expired",
        "TokenExpiredError",
    )


async def test_business_and_plan_errors(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, "GET", sandbox.url + "/businesses/nope/invoices", headers=AUTH)
    assert (status, body["name"], body["className"]) == (404, "NotFound", "not-found")
    sandbox.state.change({"api_plan": False})
    status, body = await call(http, "GET", sandbox.url + INVOICES, headers=AUTH)
    assert (status, body["name"], body["code"]) == (403, "Forbidden", 403)


async def test_find_paginates_sorts_and_filters(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    url = sandbox.url + INVOICES
    for number in ("F-3", "F-1", "F-2", "F-4"):
        assert (await call(http, "POST", url, invoice(number), AUTH))[0] == 200
    status, page = await call(http, "GET", url, headers=AUTH)
    assert status == 200
    assert (page["total"], page["limit"], page["skip"]) == (4, 10, 0)
    assert [r["invoiceNumber"] for r in page["data"]] == ["F-3", "F-1", "F-2", "F-4"]
    newest = {"$sort[createdAt]": "-1", "$limit": "2", "$skip": "1"}
    _, page = await call(http, "GET", url, headers=AUTH, params=newest)
    assert [r["invoiceNumber"] for r in page["data"]] == ["F-2", "F-1"]
    _, page = await call(http, "GET", url, headers=AUTH, params={"$sort[invoiceNumber]": "1"})
    assert [r["invoiceNumber"] for r in page["data"]] == ["F-1", "F-2", "F-3", "F-4"]
    _, page = await call(http, "GET", url, headers=AUTH, params={"invoiceNumber": "F-2"})
    assert (page["total"], page["data"][0]["invoiceNumber"]) == (1, "F-2")
    sandbox.state.change({"ignore_filters": True, "max_limit": 3})
    _, page = await call(http, "GET", url, headers=AUTH, params={"invoiceNumber": "F-2"})
    assert (page["total"], page["limit"], len(page["data"])) == (4, 3, 3)
    sandbox.state.change({"ignore_filters": False, "refuse_filters": True})
    status, body = await call(http, "GET", url, headers=AUTH, params={"invoiceNumber": "F-2"})
    assert (status, body["name"], body["message"]) == (
        400,
        "BadRequest",
        "Invalid query parameter invoiceNumber",
    )
    _, page = await call(http, "GET", url, headers=AUTH, params=newest)
    assert [r["invoiceNumber"] for r in page["data"]] == ["F-2", "F-1"]
    for bad in ({"$limit": "x"}, {"$where": "1"}, {"$sort[createdAt]": "up"}):
        status, body = await call(http, "GET", url, headers=AUTH, params=bad)
        assert (status, body["name"]) == (400, "BadRequest")


async def test_get_by_id(sandbox: SandboxHandle, http: aiohttp.ClientSession) -> None:
    _, record = await call(http, "POST", sandbox.url + INVOICES, invoice("G-1"), AUTH)
    status, found = await call(
        http, "GET", f"{sandbox.url}{INVOICES}/{record['_id']}", headers=AUTH
    )
    assert (status, found) == (200, record)
    status, body = await call(http, "GET", f"{sandbox.url}{INVOICES}/{'0' * 24}", headers=AUTH)
    assert (status, body["name"]) == (404, "NotFound")


async def test_state_reset_and_bad_options(
    sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    await call(http, "POST", sandbox.url + INVOICES, invoice("S-1"), AUTH)
    url = sandbox.url + "/_sandbox/state"
    for bad in ({"duplicate_status": 418}, {"no_such_option": 1}, {"token_lifetime": -1}):
        status, _ = await call(http, "POST", url, bad)
        assert status == 400
    status, state = await call(http, "POST", url, {"ignore_filters": True})
    assert (status, state["options"]["ignore_filters"]) == (200, True)
    assert state["businesses"] == {"acme": 1}
    status, state = await call(http, "POST", sandbox.url + "/_sandbox/reset", {})
    assert (status, state["options"]["ignore_filters"], state["businesses"]) == (200, False, {})
    assert (await call(http, "GET", sandbox.url + "/_sandbox/created"))[1] == {"created": []}


async def test_profile_starts_a_working_sandbox(http: aiohttp.ClientSession) -> None:
    handle = await start_sandbox("refrens", **PROFILE.options)
    try:
        url = f"{handle.url}/businesses/{PROFILE.account['url_key']}/invoices"
        headers = {"Authorization": f"Bearer {PROFILE.token}"}
        assert (await call(http, "GET", url, headers=headers))[0] == 200
        for failure in PROFILE.failures.values():
            handle.state.reset()
            handle.state.change(dict(failure))
            assert (await call(http, "GET", url, headers=headers))[0] in (401, 403)
    finally:
        await handle.stop()


def test_cli_arguments_become_refrens_options() -> None:
    parser = argparse.ArgumentParser()
    configure_sandbox(parser)
    args = parser.parse_args(
        [
            "--provider",
            "refrens",
            "--token",
            "T1",
            "--option",
            'apps={"app-1": "secret-1"}',
            "--option",
            "duplicate_status=409",
            "--option",
            "ignore_filters=true",
        ]
    )
    assert options_from_args(args) == {
        "tokens": ["T1"],
        "apps": {"app-1": "secret-1"},
        "duplicate_status": 409,
        "ignore_filters": True,
    }
