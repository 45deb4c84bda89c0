"""The sandbox keeps BillClap's books: numbers, credits, parties, catalog and totals."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.testing.sandbox.billclap.calls import OTHER, TOKEN, get, invoice, post, send
from worker.outcome import DeadLetter, PauseAccount, PauseReason, Reason, Synced
from worker.testing.sandbox.billclap.app import CREATE_PATH, books_of
from worker.testing.sandbox.server import SandboxHandle


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
