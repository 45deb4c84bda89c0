"""The Billit tag scan's stopping rules, with a fake list/get (no HTTP): "not found" only once
every invoice the earlier attempt could have created was read; otherwise ``ambiguous``."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from worker.outcome import Reason, Synced
from worker.providers.billit_answers import Settled
from worker.providers.billit_options import BillitOptions
from worker.providers.billit_reconcile import Expected, TagMemory, find_tagged

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
TAG = "invoice-sync:k-1"


def shop(count: int, *, ours_at: int | None = None) -> list[dict[str, Any]]:
    """``count`` invoices, newest first, one a second back from START + 10 min."""
    newest = START + timedelta(minutes=10)
    invoices = []
    for i in range(count):
        tags = [TAG] if i == ours_at else ["invoice-sync:other"]
        invoices.append({
            "uuid": f"u{i}", "number": i, "permalink": f"https://x/{i}", "finalAmount": 100,
            "createdAt": (newest - timedelta(seconds=i)).isoformat(), "tags": tags,
        })  # fmt: skip
    return invoices


def fake_get(invoices: list[dict[str, Any]], reads: list[str]) -> Any:
    async def get(path: str, params: Mapping[str, str]) -> Any:
        reads.append(path)
        if path == "/v1/invoices":
            size, page = int(params["per_page"]), int(params["page"])
            chunk = invoices[(page - 1) * size : page * size]
            listed = [{k: v for k, v in i.items() if k != "tags"} for i in chunk]
            last = max(1, -(-len(invoices) // size))
            return {"data": listed, "meta": {"last_page": last}}
        uuid = path.rsplit("/", 1)[1]
        found = next(i for i in invoices if i["uuid"] == uuid)
        return {"data": {**found, "tags": [{"name": t} for t in found["tags"]]}}

    return get


def expected(since: datetime | None) -> Expected:
    return Expected(tag=TAG, invoice_date="2026-07-01", customer_id=None, total=Decimal(100),
                    since=since)  # fmt: skip


OPTIONS = BillitOptions(invoice_type_id=1, reconcile_pages=3, reconcile_per_page=10,
                        reconcile_details=100)  # fmt: skip


async def test_found_within_the_window_is_recovered() -> None:
    reads: list[str] = []
    found = await find_tagged(fake_get(shop(25, ours_at=12), reads), expected(START),
                              OPTIONS, TagMemory())  # fmt: skip
    assert isinstance(found, Synced)
    assert found.recovered
    assert found.provider_invoice_id == "u12"


async def test_not_found_once_the_scan_reaches_invoices_older_than_the_first_attempt() -> None:
    # 700 s of invoices after START + 60 s of clock slack: the scan must read past them all,
    # and it stops at the first page that reaches older ones.
    invoices = shop(2000)
    reads: list[str] = []
    options = OPTIONS.model_copy(update={"reconcile_pages": 100, "reconcile_details": 2000})
    since = START + timedelta(minutes=9)  # 60 s of invoices since, plus 60 s of slack
    assert (
        await find_tagged(fake_get(invoices, reads), expected(since), options, TagMemory()) is None
    )
    pages = [r for r in reads if r == "/v1/invoices"]
    assert len(pages) == 13  # 120 s of invoices at one a second, ten to a page, plus one


async def test_a_window_the_pages_do_not_cover_is_ambiguous_not_absent() -> None:
    reads: list[str] = []
    with pytest.raises(Settled) as caught:
        await find_tagged(fake_get(shop(100), reads), expected(START), OPTIONS, TagMemory())
    outcome = caught.value.outcome
    assert outcome.reason is Reason.AMBIGUOUS  # type: ignore[union-attr]
    assert "reconcile_pages" in outcome.error  # type: ignore[union-attr]


async def test_the_last_page_answers_not_found_without_a_time_bound() -> None:
    reads: list[str] = []
    assert (
        await find_tagged(fake_get(shop(25), reads), expected(None), OPTIONS, TagMemory()) is None
    )
