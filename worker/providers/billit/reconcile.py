"""Finding the invoice an unknown-outcome attempt may have created, by its tag.

Billit numbers invoices itself, so a repeated create is never refused: before sending again
after an unknown outcome the adapter looks for an invoice carrying this row's tag. List items
carry no tags (only ``GET /v1/invoices/{uuid}`` does), so the scan reads the newest pages
(``per_page`` <= 250, newest first), keeps the items that could be ours (the same invoice
date when the invoice fixes it, about the same total, whenever the item shows those fields; an
item that does not show one is kept), and reads those one by one until one carries the tag.
The pages and the tags read are kept in the adapter's ``ListingIndex`` (``index``),
which every scan of the adapter shares: rows scanning at once, or soon after one another, read
the pages once and each invoice once, and invoices whose tags are known (the adapter created
them and saw the answer, or a scan read them) cost nothing. A scan usually reads only the
invoices whose create answer was lost: the ones the rows are looking for.

The scan is bounded: ``reconcile_pages`` pages, and as many one-by-one reads as the account's
rate limit allows before the attempt must send (``scan_reads``). "Not found" is only
answered when the scan has read every invoice the earlier attempt could have created: all of
them, or every one created since the row's first attempt began (``createdAt`` on the list
items, with ``CLOCK_SKEW`` of slack for the two clocks). When a bound is reached first (a busy
account pushed the invoice past the pages read, or more candidates than reads), the answer is
not "not found" either: the row is dead-lettered as ``ambiguous`` rather than risk a second
invoice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.outcome import DeadLetter, Reason, Synced
from worker.providers.base import Attempt
from worker.providers.billit.answers import Settled, synced_from
from worker.providers.billit.index import INVOICES, Get, Listed, ListingIndex
from worker.providers.billit.options import BillitOptions

# Billit rounds per row; our total is computed from the canonical form, so allow a little
# (a tenth of a percent: rounding is cents, and a wider net fetches more candidates).
AMOUNT_SLACK = Decimal("0.001")
AMOUNT_MINIMUM_SLACK = Decimal("0.05")
# A scan's one-by-one reads when the attempt carries no rate or deadline (direct use).
DEFAULT_SCAN_READS = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class Expected:
    """What the earlier attempt sent, as far as a list item can show it."""

    tag: str
    invoice_date: str | None
    """The invoice date the earlier attempt sent, when the invoice fixes it (``issue_date``);
    None when the adapter filled in "today", which may have been another day then."""
    total: Decimal | None
    """None: no narrowing by amount (the adapter always knows it; tests leave it out)."""
    since: datetime | None = None
    """When the row's first attempt began: invoices created before it cannot be ours."""


def scan_reads(attempt: Attempt, options: BillitOptions, now: float) -> int:
    """How many invoices a tag scan may read one by one: what the account's rate limit allows
    in the time left before the attempt must send (reads beyond it could not be made at that
    pace in time), at most ``reconcile_details`` when set; ``DEFAULT_SCAN_READS`` when the
    attempt's rate or deadline is not known. A human's time costs more than these reads."""
    reads = DEFAULT_SCAN_READS
    if attempt.rate is not None and attempt.send_by is not None:
        reads = math.floor(attempt.rate.per_second * max(attempt.send_by - now, 0.0))
    if options.reconcile_details is not None:
        reads = min(reads, options.reconcile_details)
    return max(reads, 1)


async def find_tagged(
    get: Get, expected: Expected, options: BillitOptions, index: ListingIndex, *, reads: int
) -> Synced | None:
    """The invoice carrying ``expected.tag`` among those created since the first attempt, or
    None when it is not there. ``reads`` bounds the invoices this scan may read one by one
    (``scan_reads``); those it finds remembered, or being read for another row, are free.
    Pages that do not prove they reach back far enough are still searched: the tag found is
    proof; only "not there" needs them all (else ``ambiguous``)."""
    listed, covered = await index.listed_since(get, expected.since, options)
    left = reads
    for entry in listed:
        if not could_be(entry, expected):
            continue
        known = index.tags.known(entry.uuid)
        if known is not None and expected.tag not in known:
            continue
        if index.tags.must_read(entry.uuid):
            if left == 0:
                # Pages short of the first attempt are the cause to name, not the reads.
                raise Settled(
                    _window_exceeded(expected, options)
                    if not covered
                    else _ambiguous(expected, reads)
                )
            left -= 1
        found = await _ours(get, index, entry.uuid, expected.tag)
        if found is not None:
            return found
    if not covered:
        raise Settled(_window_exceeded(expected, options))
    return None


async def _ours(get: Get, index: ListingIndex, uuid: str, tag: str) -> Synced | None:
    """The invoice ``uuid`` as recovered when it carries ``tag``, else None."""
    tagged = await index.tags.read(get, uuid)
    if tagged is None:
        index.forget(uuid)  # deleted since it was listed
        return None
    if tag not in tagged.tags:
        return None
    # Remembered tags (our own create, another row's read) come without the invoice.
    detail = tagged.detail if tagged.detail is not None else await get(f"{INVOICES}/{uuid}", {})
    if detail is None:
        index.forget(uuid)
        return None
    return synced_from(detail, recovered=True)


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


def _ambiguous(expected: Expected, reads: int) -> DeadLetter:
    return DeadLetter(
        reason=Reason.AMBIGUOUS,
        error=(
            f"an earlier attempt's outcome is unknown and more than {reads} recent Billit "
            "invoices could be it (the reads the account's rate_limit allows before the "
            "attempt must send, or reconcile_details); none read so far carries tag "
            f"{expected.tag!r}. Look for that tag in Billit, then replay or purge this row"
        ),
    )
