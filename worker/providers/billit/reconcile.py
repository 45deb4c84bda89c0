"""Finding the invoice an unknown-outcome attempt may have created, by its tag.

Billit numbers invoices itself, so a repeated create is never refused: before sending again
after an unknown outcome the adapter looks for an invoice carrying this row's tag. List items
carry no tags (only ``GET /v1/invoices/{uuid}`` does), so the scan reads the newest pages
(``per_page`` <= 250, newest first), keeps the items that could be ours (the same invoice
date when the invoice fixes it, about the same total, whenever the item shows those fields; an
item that does not show one is kept), and fetches those one by one until one carries the tag.
The pages are read through the adapter's ``ListingIndex`` (``billit_index``), which every scan of the adapter
shares, so rows scanning at once, or soon after one another, read the pages once.

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.outcome import DeadLetter, Reason, Synced
from worker.providers.billit.answers import Settled, synced_from
from worker.providers.billit.index import INVOICES, Get, Listed, ListingIndex
from worker.providers.billit.options import BillitOptions

# Billit rounds per row; our total is computed from the canonical form, so allow a little
# (a tenth of a percent: rounding is cents, and a wider net fetches more candidates).
AMOUNT_SLACK = Decimal("0.001")
AMOUNT_MINIMUM_SLACK = Decimal("0.05")
MEMORY_LIMIT = 50_000


@dataclass(frozen=True, kw_only=True, slots=True)
class Expected:
    """What the earlier attempt sent, as far as a list item can show it."""

    tag: str
    invoice_date: str | None
    """The invoice date the earlier attempt sent, when the invoice fixes it (``issue_date``);
    None when the adapter filled in "today", which may have been another day then."""
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
    get: Get,
    expected: Expected,
    options: BillitOptions,
    memory: TagMemory,
    index: ListingIndex,
) -> Synced | None:
    """The invoice carrying ``expected.tag`` among those created since the first attempt, or
    None when it is not there."""
    listed = await index.listed_since(get, expected.since, options)
    if listed is None:
        raise Settled(_window_exceeded(expected, options))
    budget = options.reconcile_details
    for entry in listed:
        if not could_be(entry, expected):
            continue
        known = memory.get(entry.uuid)
        if known is not None and expected.tag not in known:
            continue
        if budget == 0:
            raise Settled(_ambiguous(expected, options))
        budget -= 1
        detail = await get(f"{INVOICES}/{entry.uuid}", {})
        if detail is None:
            index.forget(entry.uuid)  # deleted since it was listed
            continue
        tags = tags_of(detail)
        memory.remember(entry.uuid, tags)
        if expected.tag in tags:
            return synced_from(detail, recovered=True)
    return None


def tags_of(body: Any) -> frozenset[str]:
    """Every string in a fetched invoice's ``tags``: they are objects with undocumented keys
    (or plain strings), so any string value that equals a tag counts as carrying it."""
    data = body.get("data") if isinstance(body, dict) else None
    tags = data.get("tags") if isinstance(data, dict) else None
    return frozenset(_strings(tags))


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value.strip()
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def could_be(entry: Listed, expected: Expected) -> bool:
    """Whether a listed invoice could be the earlier attempt's. Narrowed on what cannot differ between the attempts: the invoice date the invoice fixes
    and the total. Not on the customer: two replicas may each have created the same customer
    at Billit (a search, then a create, is not atomic), so the earlier attempt may have sent
    another id for it than this one would."""
    if (
        expected.invoice_date is not None
        and entry.invoice_date is not None
        and entry.invoice_date != expected.invoice_date
    ):
        return False
    return _amount_fits(entry.amount, expected.total)


def _amount_fits(amount: Any, total: Decimal | None) -> bool:
    if total is None or amount is None or isinstance(amount, bool):
        return True
    try:
        theirs = Decimal(str(amount))
    except InvalidOperation:
        return True
    return abs(theirs - total) <= max(AMOUNT_MINIMUM_SLACK, total * AMOUNT_SLACK)


def _window_exceeded(expected: Expected, options: BillitOptions) -> DeadLetter:
    pages = options.reconcile_pages * options.reconcile_per_page
    return DeadLetter(
        reason=Reason.AMBIGUOUS,
        error=(
            f"an earlier attempt's outcome is unknown and the newest {pages} Billit invoices do "
            f"not reach back to it, so an invoice with tag {expected.tag!r} may exist beyond "
            "them. Look for that tag in Billit, then replay or purge this row (or raise "
            "reconcile_pages)"
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
