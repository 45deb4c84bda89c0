"""Finding a Refrens invoice by its number, to reconcile an attempt whose outcome was unknown.

Refrens documents a list endpoint with ``$limit``, ``$skip`` and ``$sort[...]``; as a Feathers
service it very likely filters by field too (``?invoiceNumber=X``), but that is not documented.
So the lookup asks with the filter first and checks every record it gets client-side (a server
that ignores the filter returns other invoices, which must not count as a hit); when that finds
nothing, or the server refuses the filter (400 or 422: it takes only the documented
parameters), it walks the newest invoices page by page, newest first, for a bounded number of
pages: an invoice we created after an unknown outcome is among the most recent ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.errors import ProviderError
from worker.providers.http import Reply

Fetch = Callable[[Mapping[str, str]], Awaitable[Reply]]
"""Sends ``GET .../invoices`` with these query parameters and returns the answer."""

# How a server that does not take the ``invoiceNumber`` filter may refuse the query (Feathers'
# BadRequest, or Unprocessable): the walk, with documented parameters only, follows.
FILTER_REFUSED = frozenset({400, 422})


class ListingError(ProviderError):
    """The list endpoint answered something other than a page of invoices."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"Refrens invoice lookup failed with HTTP {reply.status}")
        self.reply = reply


@dataclass(frozen=True, kw_only=True, slots=True)
class Lookup:
    """What a lookup found, and how much it read to find it (the evidence when it did not)."""

    invoice: dict[str, Any] | None
    requests: int
    scanned: int
    via: str
    """``filter`` (the filtered query found it) or ``pages`` (the newest-first walk)."""

    def describe(self, number: str) -> str:
        if self.invoice is not None:
            return f"found invoice number {number!r} via {self.via}"
        return (
            f"no invoice numbered {number!r} among {self.scanned} invoices read in "
            f"{self.requests} requests (filtered query, then the newest pages)"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    data: list[dict[str, Any]]
    total: int | None


async def find_by_number(fetch: Fetch, number: str, *, page_size: int, pages: int) -> Lookup:
    """The invoice numbered ``number``, or ``Lookup(invoice=None)`` after the bounded search;
    ``ListingError`` when Refrens refuses a page (the caller retries later)."""
    reply = await fetch({"invoiceNumber": number, "$limit": str(page_size)})
    # The filter is not documented: a server refusing it is asked only what the document lists.
    refused = reply.status in FILTER_REFUSED
    first = Page(data=[], total=None) if refused else parse_page(reply)
    hit = match(first.data, number)
    if hit is not None:
        return Lookup(invoice=hit, requests=1, scanned=len(first.data), via="filter")
    requests, scanned, skip = 1, len(first.data), 0
    for _ in range(pages):
        params = {"$sort[createdAt]": "-1", "$limit": str(page_size), "$skip": str(skip)}
        page = parse_page(await fetch(params))
        requests, scanned = requests + 1, scanned + len(page.data)
        hit = match(page.data, number)
        if hit is not None:
            return Lookup(invoice=hit, requests=requests, scanned=scanned, via="pages")
        skip += len(page.data)
        # The server may cap $limit below ours: advance by what came, stop at the end.
        if not page.data or (page.total is not None and skip >= page.total):
            break
    return Lookup(invoice=None, requests=requests, scanned=scanned, via="pages")


def parse_page(reply: Reply) -> Page:
    """A Feathers page ``{total, limit, skip, data}`` (or a bare list, unpaginated)."""
    if reply.status != 200:
        raise ListingError(reply)
    body = reply.body
    if isinstance(body, list):
        return Page(data=[r for r in body if isinstance(r, dict)], total=None)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ListingError(reply)
    total = body.get("total")
    return Page(
        data=[r for r in body["data"] if isinstance(r, dict)],
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def match(records: list[dict[str, Any]], number: str) -> dict[str, Any] | None:
    """The first record carrying exactly this number (surrounding spaces aside)."""
    wanted = number.strip()
    for record in records:
        found = record.get("invoiceNumber")
        if isinstance(found, str) and found.strip() == wanted:
            return record
    return None
