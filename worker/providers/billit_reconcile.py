"""Finding the invoice an unknown-outcome attempt may have created, by its tag.

Billit numbers invoices itself, so a repeated create is never refused: before sending again
after an unknown outcome the adapter looks for an invoice carrying this row's tag. List items
carry no tags (only ``GET /v1/invoices/{uuid}`` does), so the scan reads the newest pages
(``per_page`` <= 250, newest first), keeps the items that could be ours (same customer and
invoice date, about the same total, whenever the item shows those fields; an item that does not
show one is kept), and fetches those one by one until one carries the tag.

Invoices whose tags the adapter already knows (``TagMemory``: the ones it created and saw
answered, the ones an earlier scan fetched) are checked without a fetch, so a scan usually
fetches only the invoices whose create answer was lost: the ones it is looking for.

The scan is bounded (``reconcile_pages``, ``reconcile_details`` fetches), and "not found" is
only answered when the scan has read every invoice the earlier attempt could have created: all
of them, or every one created since the row's first attempt began (``createdAt`` on the list
items, with ``CLOCK_SKEW`` of slack for the two clocks). When a bound is reached first (a busy
account pushed the invoice past the pages read, or too many candidates to fetch), the answer is
not "not found" either: the row is dead-lettered as ``ambiguous`` rather than risk a second
invoice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.outcome import DeadLetter, Reason, Synced
from worker.providers.billit_answers import Settled, synced_from
from worker.providers.billit_options import BillitId, BillitOptions

INVOICES = "/v1/invoices"
# Billit rounds per row; our total is computed from the canonical form, so allow a little
# (a tenth of a percent: rounding is cents, and a wider net fetches more candidates).
AMOUNT_SLACK = Decimal("0.001")
AMOUNT_MINIMUM_SLACK = Decimal("0.05")
MEMORY_LIMIT = 50_000
# Our database's clock and Billit's may disagree by this much; the scan reads that far further.
CLOCK_SKEW = timedelta(seconds=60)

Get = Callable[[str, Mapping[str, str]], Awaitable[Any | None]]
"""``get(path, params)``: the body of a 2xx answer, None for a 404, ``Settled`` otherwise."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Expected:
    """What the earlier attempt sent, as far as a list item can show it."""

    tag: str
    invoice_date: str
    customer_id: BillitId | None
    total: Decimal | None
    """None when ``provider_options`` may have changed the products (no amount narrowing)."""
    since: datetime | None = None
    """When the row's first attempt began: invoices created before it cannot be ours."""


class TagMemory:
    """The tags of invoices this adapter has seen, by uuid, newest kept (bounded)."""

    def __init__(self, limit: int = MEMORY_LIMIT) -> None:
        self._tags: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._limit = limit

    def remember(self, uuid: str, tags: frozenset[str]) -> None:
        self._tags[uuid] = tags
        self._tags.move_to_end(uuid)
        while len(self._tags) > self._limit:
            self._tags.popitem(last=False)

    def get(self, uuid: str) -> frozenset[str] | None:
        return self._tags.get(uuid)


async def find_tagged(
    get: Get, expected: Expected, options: BillitOptions, memory: TagMemory
) -> Synced | None:
    """The invoice carrying ``expected.tag`` among the newest, or None when it is not there."""
    budget = options.reconcile_details
    for page in range(1, options.reconcile_pages + 1):
        params = {"per_page": str(options.reconcile_per_page), "page": str(page)}
        listing = await get(INVOICES, params)
        items = _items(listing)
        for uuid in candidates(items, expected):
            known = memory.get(uuid)
            if known is not None and expected.tag not in known:
                continue
            if budget == 0:
                raise Settled(_ambiguous(expected, options))
            budget -= 1
            detail = await get(f"{INVOICES}/{uuid}", {})
            if detail is None:
                continue  # deleted since the list was read
            memory.remember(uuid, tags_of(detail))
            if expected.tag in tags_of(detail):
                return synced_from(detail, recovered=True)
        if _last_page(listing, items, page, options.reconcile_per_page):
            return None
        if _reached(items, expected.since):
            return None
    raise Settled(_window_exceeded(expected, options))


def candidates(items: Iterable[Mapping[str, Any]], expected: Expected) -> list[str]:
    """The uuids of list items that could be the earlier attempt's invoice, in list order."""
    found = []
    for item in items:
        uuid = item.get("uuid")
        if uuid in (None, "") or not _could_be(item, expected):
            continue
        found.append(str(uuid))
    return found


def tags_of(body: Any) -> frozenset[str]:
    """Every string in a fetched invoice's ``tags``: they are objects with undocumented keys
    (or plain strings), so any string value that equals a tag counts as carrying it."""
    data = body.get("data") if isinstance(body, dict) else None
    tags = data.get("tags") if isinstance(data, dict) else None
    return frozenset(_strings(tags))


def carries_tag(body: Any, tag: str) -> bool:
    return tag in tags_of(body)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value.strip()
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def _could_be(item: Mapping[str, Any], expected: Expected) -> bool:
    customer = item.get("customerId")
    if customer is None and isinstance(item.get("customer"), dict):
        customer = item["customer"].get("id")
    wanted = expected.customer_id
    if wanted is not None and customer is not None and str(customer) != str(wanted):
        return False
    when = item.get("invoiceDate")
    if isinstance(when, str) and len(when) >= 10 and when[:10] != expected.invoice_date:
        return False
    return _amount_fits(item.get("finalAmount"), expected.total)


def _amount_fits(amount: Any, total: Decimal | None) -> bool:
    if total is None or amount is None or isinstance(amount, bool):
        return True
    try:
        theirs = Decimal(str(amount))
    except InvalidOperation:
        return True
    return abs(theirs - total) <= max(AMOUNT_MINIMUM_SLACK, total * AMOUNT_SLACK)


def _items(listing: Any) -> list[Mapping[str, Any]]:
    data = listing.get("data") if isinstance(listing, dict) else None
    return [item for item in data or [] if isinstance(item, dict)]


def _last_page(listing: Any, items: list[Mapping[str, Any]], page: int, per_page: int) -> bool:
    meta = listing.get("meta") if isinstance(listing, dict) else None
    last = meta.get("last_page") if isinstance(meta, dict) else None
    if isinstance(last, int) and not isinstance(last, bool):
        return page >= last
    return len(items) < per_page


def _reached(items: list[Mapping[str, Any]], since: datetime | None) -> bool:
    """Whether the page's oldest item was created before the first attempt began (newest first:
    every later page is older still)."""
    if since is None or not items:
        return False
    created = items[-1].get("createdAt")
    if not isinstance(created, str):
        return False
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < since - CLOCK_SKEW


def _window_exceeded(expected: Expected, options: BillitOptions) -> DeadLetter:
    pages = options.reconcile_pages * options.reconcile_per_page
    return DeadLetter(
        reason=Reason.AMBIGUOUS,
        error=(
            f"an earlier attempt's outcome is unknown and the newest {pages} Billit invoices do "
            f"not reach back to it; none of them carries tag {expected.tag!r}. Look for that "
            "tag in Billit, then replay or purge this row (or raise reconcile_pages)"
        ),
    )


def _ambiguous(expected: Expected, options: BillitOptions) -> DeadLetter:
    return DeadLetter(
        reason=Reason.AMBIGUOUS,
        error=(
            f"an earlier attempt's outcome is unknown and more than {options.reconcile_details} "
            f"recent Billit invoices could be it; none read so far carries tag {expected.tag!r}. "
            "Look for that tag in Billit, then replay or purge this row (or raise "
            "reconcile_details)"
        ),
    )
