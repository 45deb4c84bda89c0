"""The Billit tag scan's stopping rules, with a fake list/get (no HTTP): "not found" only once
every invoice the earlier attempt could have created was read; otherwise ``ambiguous``."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from worker.outcome import Reason, Synced
from worker.providers.billit.answers import Settled
from worker.providers.billit.index import ListingIndex
from worker.providers.billit.options import BillitOptions
from worker.providers.billit.reconcile import Expected, find_tagged

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
TAG = "invoice-sync:k-1"


def shop(count: int, *, ours_at: int | None = None) -> list[dict[str, Any]]:
    """``count`` invoices, newest first, one a second back from START + 10 min."""
    newest = START + timedelta(minutes=10)
    invoices = []
    for i in range(count):
        tags = [TAG] if i == ours_at else ["invoice-sync:other"]
        invoices.append(
            {
                "uuid": f"u{i}",
                "number": i,
                "permalink": f"https://x/{i}",
                "finalAmount": 100,
                "createdAt": (newest - timedelta(seconds=i)).isoformat(),
                "tags": tags,
            }
        )
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


OPTIONS = BillitOptions(
    invoice_type_id=1, reconcile_pages=3, reconcile_per_page=10, reconcile_details=100
)


async def scan(
    invoices: list[dict[str, Any]],
    since: datetime | None,
    reads: list[str],
    *,
    options: BillitOptions = OPTIONS,
    index: ListingIndex | None = None,
    tag: str = TAG,
) -> Synced | None:
    wanted = Expected(tag=tag, invoice_date="2026-07-01", total=Decimal(100), since=since)
    get, reads_allowed = fake_get(invoices, reads), options.reconcile_details or 100
    return await find_tagged(get, wanted, options, index or ListingIndex(), reads=reads_allowed)


def pages(reads: list[str]) -> int:
    return sum(1 for r in reads if r == "/v1/invoices")


async def test_found_within_the_window_is_recovered() -> None:
    found = await scan(shop(25, ours_at=12), START, [])
    assert isinstance(found, Synced)
    assert found.recovered
    assert found.provider_invoice_id == "u12"


async def test_not_found_once_the_scan_reaches_invoices_older_than_the_first_attempt() -> None:
    # 700 s of invoices after START + 60 s of clock slack: the scan must read past them all,
    # and it stops at the first page that reaches older ones.
    reads: list[str] = []
    options = OPTIONS.model_copy(update={"reconcile_pages": 100, "reconcile_details": 2000})
    since = START + timedelta(minutes=9)  # 60 s of invoices since, plus 60 s of slack
    assert await scan(shop(2000), since, reads, options=options) is None
    assert pages(reads) == 13  # 120 s of invoices at one a second, ten to a page, plus one


async def test_a_window_the_pages_do_not_cover_is_ambiguous_not_absent() -> None:
    with pytest.raises(Settled) as caught:
        await scan(shop(100), START, [])
    outcome = caught.value.outcome
    assert outcome.reason is Reason.AMBIGUOUS  # type: ignore[union-attr]
    assert "reconcile_pages" in outcome.error  # type: ignore[union-attr]
    assert TAG in outcome.error  # type: ignore[union-attr]


async def test_the_last_page_answers_not_found_without_a_time_bound() -> None:
    assert await scan(shop(25), None, []) is None


# --- the listing shared by every scan of one adapter ------------------------------------------


def frozen() -> ListingIndex:
    """An index whose clock stands still: every scan asks at the instant its read begins."""
    return ListingIndex(clock=lambda: 0.0)


async def test_scans_at_once_read_the_pages_once() -> None:
    invoices, index = shop(25, ours_at=3), frozen()
    reads: list[str] = []
    since = START + timedelta(minutes=9)
    found = await asyncio.gather(
        scan(invoices, since, reads, index=index),
        scan(invoices, since, reads, index=index, tag="invoice-sync:absent"),
        scan(invoices, since, reads, index=index, tag="invoice-sync:absent-too"),
    )
    assert [getattr(f, "provider_invoice_id", None) for f in found] == ["u3", None, None]
    assert pages(reads) == 3  # the three pages, once: no scan asked after the read began


async def test_a_scan_that_asks_while_the_pages_are_read_reads_again() -> None:
    ticks = iter(range(100))
    index = ListingIndex(clock=lambda: float(next(ticks)))
    reads: list[str] = []
    since = START + timedelta(minutes=9)
    await asyncio.gather(
        scan(shop(25), since, reads, index=index), scan(shop(25), since, reads, index=index)
    )
    # The second asked after the first read began; its own read stops at page 1, which shows
    # invoices the index holds.
    assert pages(reads) == 4


async def test_a_later_scan_reads_only_the_newer_pages() -> None:
    invoices, index = shop(25), ListingIndex()
    since = START + timedelta(minutes=9)
    assert await scan(invoices, since, [], index=index) is None
    # Twelve more invoices arrive, one of them the one the next scan looks for.
    newer = [
        {
            **item,
            "uuid": f"n{i}",
            "createdAt": (START + timedelta(minutes=11, seconds=-i)).isoformat(),
            "tags": [TAG] if i == 5 else ["invoice-sync:other"],
        }
        for i, item in enumerate(shop(12))
    ]
    reads: list[str] = []
    found = await scan(newer + invoices, since, reads, index=index)
    assert isinstance(found, Synced)
    assert found.provider_invoice_id == "n5"
    # Page 2 shows invoices the index held, which already reach back: no need for page 3.
    assert pages(reads) == 2


async def test_an_invoice_listed_after_the_last_read_is_not_missed() -> None:
    invoices, index = shop(5), ListingIndex()
    assert await scan(invoices, None, [], index=index) is None
    created_since = {**shop(1)[0], "uuid": "late", "tags": [TAG]}
    found = await scan([created_since, *invoices], None, [], index=index)
    assert isinstance(found, Synced)
    assert found.provider_invoice_id == "late"


async def test_a_scan_that_cannot_reach_tells_later_ones_without_reading_again() -> None:
    invoices, index = shop(100), frozen()
    reads: list[str] = []
    results = await asyncio.gather(
        *(scan(invoices, START, reads, index=index) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Settled) for r in results)
    assert pages(reads) == 3  # one refresh of three pages, not one per scan


async def test_an_index_that_no_longer_joins_is_replaced() -> None:
    index = ListingIndex()
    assert await scan(shop(5), None, [], index=index) is None
    # A whole different account's worth of invoices since (more than the pages allowed):
    # what the index held proves nothing about the invoices between.
    others = [{**item, "uuid": f"x{i}"} for i, item in enumerate(shop(100))]
    with pytest.raises(Settled):
        await scan(others + shop(5), None, [], index=index)


async def test_the_index_is_bounded_and_its_floor_rises() -> None:
    index = ListingIndex(limit=10)
    since = START + timedelta(minutes=9, seconds=50)  # needs 70 s back: 70 invoices
    with pytest.raises(Settled):  # the ten newest are kept: not enough to say "absent"
        await scan(shop(25), since, [], index=index, options=OPTIONS)
    assert await scan(shop(25), START + timedelta(minutes=10, seconds=55), [], index=index) is None


# --- lists whose order the documents do not give ----------------------------------------------


async def test_an_oldest_first_list_is_read_from_its_last_page() -> None:
    # Ours is among the newest; the oldest invoices, on page 1, are older than the first
    # attempt. Read as newest first, page 1 "reached back" and the scan answered not found:
    # the row was sent again.
    invoices = list(reversed(shop(100, ours_at=3)))
    reads: list[str] = []
    since = START + timedelta(minutes=9, seconds=50)
    found = await scan(invoices, since, reads)
    assert isinstance(found, Synced)
    assert found.provider_invoice_id == "u3"
    assert pages(reads) == 3  # page 1, then pages 10 and 9: the three pages allowed


async def test_an_oldest_first_list_answers_not_found_only_once_read_back_far_enough() -> None:
    invoices = list(reversed(shop(100)))
    reads: list[str] = []
    options = OPTIONS.model_copy(update={"reconcile_pages": 20})
    since = START + timedelta(minutes=9, seconds=50)  # 10 s since, 60 s of slack: 70 invoices
    assert await scan(invoices, since, reads, options=options) is None
    assert pages(reads) == 1 + 8  # page 1, then pages 10 down to 3 (the 80 newest)
    with pytest.raises(Settled):  # three pages do not reach back 70 invoices
        await scan(invoices, since, [])


async def test_pages_in_no_order_prove_nothing_but_their_end() -> None:
    # Page 1 in no order, ending on an invoice older than the first attempt: read as newest
    # first it "reached back", and ours, on page 2, was never looked at.
    by_uuid = {i["uuid"]: i for i in shop(100, ours_at=2)}
    first = [50, 10, 95, 20, 60, 30, 70, 40, 80, 99]
    rest = [2, *(n for n in range(100) if n not in first and n != 2)]
    invoices = [by_uuid[f"u{n}"] for n in first + rest]
    since = START + timedelta(minutes=9, seconds=50)
    found = await scan(invoices, since, [])
    assert isinstance(found, Synced)
    assert found.provider_invoice_id == "u2"
    with pytest.raises(Settled):  # never "not found" before the last page
        await scan([i for i in invoices if i["uuid"] != "u2"], since, [])


async def test_the_tag_found_is_proof_even_when_the_pages_do_not_show_their_times() -> None:
    # No createdAt on the list items: how far back the pages reach is unknown, so "not found"
    # would be ambiguous; but ours, on page 1, is found.
    invoices = [{k: v for k, v in i.items() if k != "createdAt"} for i in shop(100, ours_at=4)]
    found = await scan(invoices, START, [])
    assert isinstance(found, Synced)
    assert found.provider_invoice_id == "u4"
    with pytest.raises(Settled):
        await scan([i for i in invoices if i["uuid"] != "u4"], START, [])


async def test_pages_whose_times_are_all_alike_never_answer_not_found() -> None:
    # A bulk import: page 1's invoices all made in the same second, an hour before the first
    # attempt. Nothing shows the list newest first, so their age proves nothing.
    invoices = shop(100)
    for item in invoices[:60]:
        item["createdAt"] = (START - timedelta(hours=1)).isoformat()
    invoices = invoices[:60][::-1] + invoices[60:]
    with pytest.raises(Settled):
        await scan(invoices, START + timedelta(minutes=9, seconds=50), [])
