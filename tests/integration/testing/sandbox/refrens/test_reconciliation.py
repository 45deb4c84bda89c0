"""Unknown outcomes recovered by looking the number up, and lookups that fail."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import web

from tests.integration.testing.sandbox.refrens.calls import (
    CUSTOMER,
    INVOICES,
    TOKEN,
    URL_KEY,
    created,
    invoice,
    login,
    logins,
    requests,
    send,
)
from worker.outcome import DeadLetter, PauseAccount, RateLimited, Reason, Retry, Synced
from worker.providers.base import Credentials, HttpTimeouts
from worker.providers.refrens.adapter import Refrens, RefrensOptions
from worker.testing.sandbox.refrens.app import books_of
from worker.testing.sandbox.server import SandboxHandle


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


async def test_lookup_walks_the_pages_when_the_server_refuses_the_filter(
    sandbox: SandboxHandle, connect: Any
) -> None:
    # The filter is not in Refrens' document: a server taking only the documented parameters
    # answers it 400. The lookup must still find the invoice, not retry until a dead letter.
    sandbox.state.change({"refuse_filters": True, "max_limit": 4})
    adapter = connect(lookup_page_size=4, lookup_pages=5)
    for number in ["OLD-1", "MINE-3", "NEW-1", "NEW-2", "NEW-3", "NEW-4"]:
        assert isinstance(await send(adapter, invoice(number)), Synced)

    outcome = await send(adapter, invoice("MINE-3"), prior_unknown=True)

    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert outcome.provider_invoice_id == created(sandbox)[1]["_id"]
    # The refused filter, then newest pages of 4: the 4 newest, then ours.
    assert requests(sandbox)[f"GET {INVOICES}"] == {"400": 1, "200": 2}
    assert len(created(sandbox)) == 6


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
