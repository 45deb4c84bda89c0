"""The tag cache every Billit scan of one adapter shares, and how many reads a scan may spend:
an invoice's tags are read once however many rows look at it, and reads another row makes or
made cost a scan nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from worker.durations import parse_rate
from worker.invoice import parse_invoice
from worker.outcome import Reason, Synced
from worker.providers.base import Attempt
from worker.providers.billit.answers import Settled
from worker.providers.billit.index import ListingIndex, TagCache
from worker.providers.billit.options import BillitOptions
from worker.providers.billit.reconcile import Expected, find_tagged, scan_reads

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
OPTIONS = BillitOptions(invoice_type_id=1, reconcile_per_page=250)


def sale(count: int) -> list[dict[str, Any]]:
    """``count`` look-alike invoices (same date, same total), newest first; ``u{i}`` carries
    tag ``t{i}``."""
    return [
        {
            "uuid": f"u{i}",
            "number": i,
            "finalAmount": 19.9,
            "invoiceDate": "2026-07-01",
            "createdAt": (START - timedelta(seconds=i)).isoformat(),
            "tags": [f"t{i}"],
        }
        for i in range(count)
    ]


class Billit:
    """A fake list/get whose invoice reads wait for ``release`` (so scans overlap)."""

    def __init__(self, invoices: list[dict[str, Any]]) -> None:
        self.invoices = invoices
        self.reads: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failing = False

    async def get(self, path: str, params: Mapping[str, str]) -> Any:
        if path == "/v1/invoices":
            listed = [{k: v for k, v in i.items() if k != "tags"} for i in self.invoices]
            return {"data": listed, "meta": {"last_page": 1}}
        self.reads.append(path)
        await self.release.wait()
        if self.failing:
            raise Settled(Synced(provider_invoice_id="never"))  # any outcome will do
        uuid = path.rsplit("/", 1)[1]
        found = next(i for i in self.invoices if i["uuid"] == uuid)
        return {"data": {**found, "tags": [{"name": t} for t in found["tags"]]}}


async def scan(billit: Billit, index: ListingIndex, tag: str, reads: int) -> Synced | None:
    wanted = Expected(tag=tag, invoice_date="2026-07-01", total=Decimal("19.90"), since=None)
    return await find_tagged(billit.get, wanted, OPTIONS, index, reads=reads)


async def test_rows_settling_together_read_each_invoice_once() -> None:
    billit, index = Billit(sale(40)), ListingIndex()
    billit.release.clear()
    scans = [asyncio.create_task(scan(billit, index, f"t{i}", reads=40)) for i in range(40)]
    await asyncio.sleep(0.01)
    billit.release.set()
    found = await asyncio.gather(*scans)
    assert [f.provider_invoice_id if f else None for f in found] == [f"u{i}" for i in range(40)]
    # Each invoice read once, by the first scan to reach it; the others waited for that read.
    assert sorted(billit.reads) == sorted(f"/v1/invoices/u{i}" for i in range(40))


async def test_a_read_under_way_for_another_row_costs_nothing() -> None:
    billit, index = Billit(sale(1)), ListingIndex()
    billit.release.clear()
    other = asyncio.create_task(scan(billit, index, "t-absent", reads=1))
    await asyncio.sleep(0.01)  # the other row's read of u0 is under way
    mine = asyncio.create_task(scan(billit, index, "t0", reads=0))
    await asyncio.sleep(0.01)
    billit.release.set()
    assert await other is None
    found = await mine
    assert isinstance(found, Synced)
    assert (found.provider_invoice_id, found.recovered) == ("u0", True)
    assert billit.reads == ["/v1/invoices/u0"]


async def test_remembered_tags_cost_no_read_and_reads_run_out_as_ambiguous() -> None:
    billit, index = Billit(sale(3)), ListingIndex()
    index.tags.remember("u0", frozenset({"t0"}))
    # u0 is known not to be it: free. u1 and u2 need a read each, and only one is allowed.
    with pytest.raises(Settled) as caught:
        await scan(billit, index, "t2", reads=1)
    assert caught.value.outcome.reason is Reason.AMBIGUOUS  # type: ignore[union-attr]
    assert "more than 1 recent" in caught.value.outcome.error  # type: ignore[union-attr]
    assert billit.reads == ["/v1/invoices/u1"]
    # The next attempt starts where this one stopped.
    found = await scan(billit, index, "t2", reads=1)
    assert isinstance(found, Synced)
    assert billit.reads == ["/v1/invoices/u1", "/v1/invoices/u2"]


async def test_a_failed_read_fails_its_waiters_and_a_cut_short_one_is_read_again() -> None:
    billit, cache = Billit(sale(1)), TagCache()
    billit.release.clear()
    billit.failing = True
    first = asyncio.create_task(cache.read(billit.get, "u0"))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cache.read(billit.get, "u0"))
    await asyncio.sleep(0.01)
    billit.release.set()
    for task in (first, waiter):
        with pytest.raises(Settled):
            await task
    assert len(billit.reads) == 1
    billit.release.clear()
    billit.failing = False
    cut = asyncio.create_task(cache.read(billit.get, "u0"))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cache.read(billit.get, "u0"))
    await asyncio.sleep(0.01)
    cut.cancel()  # that attempt's shutdown: the waiter reads for itself
    await asyncio.sleep(0.01)
    billit.release.set()
    tagged = await waiter
    assert tagged is not None
    assert tagged.tags == frozenset({"t0"})
    assert len(billit.reads) == 3
    assert cache.known("u0") == frozenset({"t0"})


def attempt(rate: str | None, send_by: float | None) -> Attempt:
    doc = {"cash_sale": True, "lines": [{"name": "X", "quantity": 1, "unit_price": 1}]}
    return Attempt(
        outbox_id=1,
        account="athens",
        idempotency_key="k",
        invoice=parse_invoice(doc),
        number=2,
        prior_unknown=True,
        send_by=send_by,
        rate=None if rate is None else parse_rate(rate),
    )


def test_a_scan_may_read_what_the_rate_allows_before_it_must_send() -> None:
    assert scan_reads(attempt("10/second", 130.0), OPTIONS, now=100.0) == 300
    assert scan_reads(attempt("60/minute", 370.0), OPTIONS, now=100.0) == 270
    capped = OPTIONS.model_copy(update={"reconcile_details": 50})
    assert scan_reads(attempt("10/second", 130.0), capped, now=100.0) == 50
    assert scan_reads(attempt(None, None), OPTIONS, now=100.0) == 20
    assert scan_reads(attempt("10/second", 90.0), OPTIONS, now=100.0) == 1
