"""Unknown outcomes recovered by the tag scan, which never sends an invoice twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.integration.testing.sandbox.billit.calls import created, invoice, requests, send, warm
from worker.outcome import DeadLetter, Reason, Retry, Synced
from worker.providers.billit.mapping import tag_for
from worker.testing.sandbox.billit.app import books_of
from worker.testing.sandbox.server import SandboxHandle


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
    late = await send(adapter, invoice(), key="late", prior_unknown=True, send_by=time.monotonic())
    assert isinstance(late, Retry), late
    assert late.outcome_unknown is False
    assert "lease" in late.error
    assert requests(sandbox, "GET /v1/invoices") == 1  # it did scan
    assert [r["tags"] for r in created(sandbox)] == [["invoice-sync:warm"]]
    # With time left, the same attempt sends.
    sent = await send(
        adapter, invoice(), key="late", prior_unknown=True, send_by=time.monotonic() + 60
    )
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


@pytest.mark.parametrize("order", ["newest", "oldest"])
async def test_the_lost_invoice_is_found_whichever_way_the_list_runs(
    sandbox: SandboxHandle, connect: Any, order: str
) -> None:
    # Billit's documents give no order for the list. Read as newest first, an oldest-first
    # list's page 1 showed invoices older than the first attempt, the scan answered "not
    # found", and the invoice was sent again: two at Billit.
    sandbox.state.change({"list_order": order})
    adapter = connect(total=0.5, reconcile_per_page=2, reconcile_pages=3)
    await warm(adapter)
    for index in range(5):
        older = await send(adapter, invoice(), key=f"old-{index}", outbox_id=10 + index)
        assert isinstance(older, Synced)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    for second, record in enumerate(books_of(sandbox.app).ledger.invoices):
        record["created_at"] = (an_hour_ago + timedelta(seconds=second)).isoformat()
    since = datetime.now(UTC)
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 5}})
    lost = await send(adapter, invoice(), key="lost", since=since)
    assert isinstance(lost, Retry), lost
    sandbox.state.change({"faults": {"stall_rate": 0}})

    outcome = await send(adapter, invoice(), key="lost", prior_unknown=True, since=since)

    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert [r["tags"] for r in created(sandbox)].count(["invoice-sync:lost"]) == 1
    assert len(created(sandbox)) == 7


async def test_the_tag_is_found_on_a_list_that_does_not_show_when_invoices_were_made(
    sandbox: SandboxHandle, connect: Any
) -> None:
    sandbox.state.change({"list_created_at": False})
    adapter = connect(total=0.5, reconcile_per_page=2, reconcile_pages=2)
    await warm(adapter)
    for index in range(5):
        assert isinstance(
            await send(adapter, invoice(), key=f"old-{index}", outbox_id=10 + index), Synced
        )
    sandbox.state.change({"faults": {"stall_rate": 1, "stall_seconds": 5}})
    assert isinstance(await send(adapter, invoice(), key="lost"), Retry)
    sandbox.state.change({"faults": {"stall_rate": 0}})

    outcome = await send(adapter, invoice(), key="lost", prior_unknown=True)

    assert isinstance(outcome, Synced), outcome
    assert outcome.recovered is True
    assert len(created(sandbox)) == 7
