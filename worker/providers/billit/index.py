"""The newest Billit invoices as list pages showed them, shared by every tag scan of one adapter.

A tag scan must have read every invoice the earlier attempt could have created before it may
answer "not found". Read per row, that is the same newest pages again for every row: after a
replica dies, each of its leased rows scans the same pages, paid for out of Billit's 60
requests a minute. The index reads them once. It holds what list items show (uuid, date,
amount, ``createdAt``) and how far back its pages reach, ``floor``: it holds every
invoice created after it.

A scan asks for the invoices created since its row's first attempt, read by a refresh that
began after the scan did, so nothing the earlier attempt created can be missing. A refresh reads
from page 1 and stops as soon as it can prove coverage:

- the last page: every invoice is in the index;
- a page shows an invoice the index already held, and the old floor reaches back far enough:
  the new pages and the old ones join (new invoices only push older ones to later pages, so a
  page read later can repeat an item but never skip one);
- a page reaches invoices created before what the scan needs.

Billit's documents give no order for the list. The pages are taken for newest first only once
the ``createdAt`` of what they show has fallen along the reading and never risen; a list seen
rising, or not yet seen falling (every time alike), proves nothing by time (only its last page
would). A list whose page 1 shows its oldest invoices first
(a paginator without an order) is read backwards from its last page instead, each page from its
end, where the same rules hold; it never joins an older reading. Taking such a list for newest
first would have answered "not found" from its oldest invoices, and the row would have been
sent again: a second invoice.

At most ``reconcile_pages`` pages a refresh; when that is not enough the scan is told so (its
row becomes ``ambiguous``, never "not found"), and scans that need as far back or further are
told so too until a new refresh begins after them.

List items carry no tags, so a scan reads candidates one by one; the index's ``TagCache``
keeps what those reads (and the adapter's own creates) showed. An invoice's tags do not
change, so each is read once however many rows look at it: rows settling together (a batch
whose answers were lost, taken again after a crash) share the reads instead of each paying
for all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.providers.billit.options import BillitOptions

INVOICES = "/v1/invoices"
# Our database's clock and Billit's may disagree by this much; the scan reads that far further.
CLOCK_SKEW = timedelta(seconds=60)
INDEX_LIMIT = 20_000
TAGS_LIMIT = 50_000
BEGINNING = datetime.min.replace(tzinfo=UTC)

Get = Callable[[str, Mapping[str, str]], Awaitable[Any | None]]
"""``get(path, params)``: the body of a 2xx answer, None for a 404, ``Settled`` otherwise."""


@dataclass(frozen=True, slots=True)
class Listed:
    """What a list item shows of one invoice (any of it may be missing)."""

    uuid: str
    invoice_date: str | None
    amount: Any
    created: datetime | None

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Listed | None:
        uuid = item.get("uuid")
        if uuid in (None, ""):
            return None
        when = item.get("invoiceDate")
        return cls(
            uuid=str(uuid),
            invoice_date=when[:10] if isinstance(when, str) and len(when) >= 10 else None,
            amount=item.get("finalAmount"),
            created=created_at(item),
        )


class ListingIndex:
    """The invoices created after ``floor``, as the newest list pages showed them."""

    def __init__(
        self, *, limit: int = INDEX_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._listed: dict[str, Listed] = {}
        self._floor: datetime | None = None
        self._read_at: float | None = None
        self._aimed = BEGINNING
        self._limit = limit
        self._clock = clock
        self._lock = asyncio.Lock()
        self.tags = TagCache()

    async def listed_since(
        self, get: Get, since: datetime | None, options: BillitOptions
    ) -> tuple[list[Listed], bool]:
        """The invoices created since ``since`` (all of them when None) that a refresh begun
        after this call read, newest first, and whether they are every one of them (False: the
        pages allowed do not reach back that far, or do not show how far they reach)."""
        asked = self._clock()
        target = BEGINNING if since is None else since - CLOCK_SKEW
        async with self._lock:
            fresh = self._read_at is not None and self._read_at >= asked
            # A fresh refresh that aimed as far back and fell short would fall short again.
            if not fresh or not (self._covers(target) or self._aimed <= target):
                await self._refresh(get, target, options)
            covered = self._covers(target)
            shown = [e for e in self._listed.values() if e.created is None or e.created >= target]
        shown.sort(key=lambda e: e.created or BEGINNING, reverse=True)
        return shown, covered

    def forget(self, uuid: str) -> None:
        """An invoice deleted since it was listed."""
        self._listed.pop(uuid, None)

    def _covers(self, target: datetime) -> bool:
        return self._floor is not None and self._floor <= target

    async def _refresh(self, get: Get, target: datetime, options: BillitOptions) -> None:
        began = self._clock()
        pages = _Pages(get, options.reconcile_per_page)
        first = await pages.read(1)
        if first.oldest_first and first.last is not None and first.last > 1:
            fresh, floor = await self._read_backwards(pages, first, target, options)
            joined = False
        else:
            fresh, floor, joined = await self._read_forwards(pages, first, target, options)
        if joined and self._floor is not None:
            floor = self._floor if floor is None else min(floor, self._floor)
            self._listed.update(fresh)
        else:
            self._listed = fresh  # what the index held does not join: it proves nothing now
        self._floor, self._read_at, self._aimed = floor, began, target
        self._bound()

    async def _read_forwards(
        self, pages: _Pages, page: _Page, target: datetime, options: BillitOptions
    ) -> tuple[dict[str, Listed], datetime | None, bool]:
        """From page 1 on, newest first: (what was read, its floor, whether it joins what the
        index held)."""
        fresh: dict[str, Listed] = {}
        order = _Order()
        joined = False  # a page showed an invoice already held: the old pages join the new
        floor: datetime | None = None
        for number in range(1, options.reconcile_pages + 1):
            if number > 1:
                page = await pages.read(number)
            for entry in page.entries:
                order.see(entry, repeated=entry.uuid in fresh)
                joined = joined or entry.uuid in self._listed
                fresh[entry.uuid] = entry
            if page.is_last:
                return fresh, BEGINNING, joined
            if not order.newest_first:
                # Not shown newest first (yet): neither the times nor the join prove anything;
                # a later page may show it, and the last page would in any case.
                floor, joined = None, False
                continue
            floor = page.entries[-1].created if page.items_all_listed and page.entries else None
            if joined and self._covers(target):
                break
            if floor is not None and floor < target:
                break
        return fresh, floor, joined

    async def _read_backwards(
        self, pages: _Pages, first: _Page, target: datetime, options: BillitOptions
    ) -> tuple[dict[str, Listed], datetime | None]:
        """An oldest-first list from its last page down, each page from its end: (what was
        read, its floor). Page 1 (read already) counts once every later page is read."""
        assert first.last is not None
        fresh = {entry.uuid: entry for entry in first.entries}
        order = _Order()
        floor: datetime | None = None
        number = first.last
        for _ in range(options.reconcile_pages - 1):
            page = await pages.read(number)
            for entry in reversed(page.entries):
                order.see(entry, repeated=entry.uuid in fresh)
                fresh[entry.uuid] = entry
            if number == 2:
                return fresh, BEGINNING  # every page after the first, and the first
            if not order.newest_first:
                floor = None
            else:
                oldest = page.entries[0] if page.items_all_listed and page.entries else None
                floor = oldest.created if oldest is not None else None
            if floor is not None and floor < target:
                break
            number -= 1
        return fresh, floor

    def _bound(self) -> None:
        """Keep the newest ``limit`` invoices; the floor rises to the newest one dropped."""
        if len(self._listed) <= self._limit:
            return
        ordered = sorted(self._listed.values(), key=lambda e: e.created or BEGINNING)
        dropped = ordered[: len(ordered) - self._limit]
        for entry in dropped:
            del self._listed[entry.uuid]
        newest_dropped = dropped[-1].created
        if newest_dropped is None or self._floor is None:
            self._floor = None  # no time to say how far back the rest reaches
        else:
            self._floor = max(self._floor, newest_dropped)


@dataclass(frozen=True, slots=True)
class _Page:
    """One list page as read."""

    entries: list[Listed]
    last: int | None
    """``meta.last_page``, when the answer says."""
    is_last: bool
    items_all_listed: bool
    """Every item showed a uuid (an item without one gives the page no floor)."""

    @property
    def oldest_first(self) -> bool:
        """The page's ``createdAt`` rises from the first invoice shown to the last."""
        dated = [e.created for e in self.entries if e.created is not None]
        return len(dated) >= 2 and dated[0] < dated[-1]


class _Pages:
    def __init__(self, get: Get, per_page: int) -> None:
        self._get = get
        self._per_page = per_page

    async def read(self, number: int) -> _Page:
        params = {"per_page": str(self._per_page), "page": str(number)}
        listing = await self._get(INVOICES, params)
        items = list_items(listing)
        entries = [e for e in map(Listed.of, items) if e is not None]
        meta = listing.get("meta") if isinstance(listing, dict) else None
        last = meta.get("last_page") if isinstance(meta, dict) else None
        return _Page(
            entries=entries,
            last=last if isinstance(last, int) and not isinstance(last, bool) else None,
            is_last=last_page(listing, items, number, self._per_page),
            items_all_listed=len(entries) == len(items),
        )


class _Order:
    """Whether the invoices read so far came newest first: ``createdAt`` fallen at least once
    from one to the next, and never risen. An invoice read again (new ones pushed it to the
    next page) is passed over."""

    def __init__(self) -> None:
        self._previous: datetime | None = None
        self._fallen = False
        self._risen = False

    @property
    def newest_first(self) -> bool:
        return self._fallen and not self._risen

    def see(self, entry: Listed, *, repeated: bool) -> None:
        if repeated or entry.created is None:
            return
        if self._previous is not None:
            self._fallen = self._fallen or entry.created < self._previous
            self._risen = self._risen or entry.created > self._previous
        self._previous = entry.created


@dataclass(frozen=True, slots=True)
class Tagged:
    """An invoice's tags, and the invoice itself when it was read for this ask (None when the
    tags were remembered): a scan whose tag it carries needs the whole invoice."""

    tags: frozenset[str]
    detail: Any = None


class TagCache:
    """The tags of invoices read or created, by uuid, newest kept (bounded); a read under way
    is shared by every scan that asks for the same invoice meanwhile."""

    def __init__(self, limit: int = TAGS_LIMIT) -> None:
        self._tags: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._reading: dict[str, asyncio.Future[Tagged | None]] = {}
        self._limit = limit

    def remember(self, uuid: str, tags: frozenset[str]) -> None:
        self._tags[uuid] = tags
        self._tags.move_to_end(uuid)
        while len(self._tags) > self._limit:
            self._tags.popitem(last=False)

    def known(self, uuid: str) -> frozenset[str] | None:
        return self._tags.get(uuid)

    def must_read(self, uuid: str) -> bool:
        """Whether asking for ``uuid`` now costs a request (not known, not being read)."""
        return uuid not in self._tags and uuid not in self._reading

    async def read(self, get: Get, uuid: str) -> Tagged | None:
        """The tags of ``uuid``: remembered, from the read under way, or read now; None when
        Billit no longer has it. A failed read fails every scan that waited on it."""
        while True:
            known = self._tags.get(uuid)
            if known is not None:
                return Tagged(tags=known)
            pending = self._reading.get(uuid)
            if pending is None:
                return await self._read(get, uuid)
            await asyncio.wait([pending])
            if not pending.cancelled():
                return pending.result()
            # The reader's attempt was cut short (shutdown): read it here instead.

    async def _read(self, get: Get, uuid: str) -> Tagged | None:
        pending: asyncio.Future[Tagged | None] = asyncio.get_running_loop().create_future()
        self._reading[uuid] = pending
        try:
            detail = await get(f"{INVOICES}/{uuid}", {})
            tagged = None if detail is None else Tagged(tags=tags_of(detail), detail=detail)
            if tagged is not None:
                self.remember(uuid, tagged.tags)
            pending.set_result(tagged)
            return tagged
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # marked as seen: nobody may be waiting to retrieve it
            raise
        finally:
            del self._reading[uuid]
            if not pending.done():
                pending.cancel()


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


def list_items(listing: Any) -> list[Mapping[str, Any]]:
    data = listing.get("data") if isinstance(listing, dict) else None
    return [item for item in data or [] if isinstance(item, dict)]


def last_page(listing: Any, items: list[Mapping[str, Any]], page: int, per_page: int) -> bool:
    meta = listing.get("meta") if isinstance(listing, dict) else None
    last = meta.get("last_page") if isinstance(meta, dict) else None
    if isinstance(last, int) and not isinstance(last, bool):
        return page >= last
    return len(items) < per_page


def created_at(item: Mapping[str, Any]) -> datetime | None:
    """A list item's ``createdAt`` (not in Billit's documents; used when shown)."""
    created = item.get("createdAt")
    if not isinstance(created, str):
        return None
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
