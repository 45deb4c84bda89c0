"""What Billit's ``GET /v1/account`` tells the adapter, read once and cached.

Billit's overview says the account's vat ids, payment methods and biller "don't change often so
you can safely cache" them. ``AccountFacts`` is the pure reading of one answer; ``AccountCache``
keeps it for ``account_refresh`` seconds, lets concurrent attempts share one fetch (an
``asyncio.Lock``), and can be invalidated when Billit refuses an id we took from it.

The shapes come from Billit's published specification: ``data.relations.vats[]`` entries are
``{"id", "name": "24%", "value": 24}`` (the rate is ``value``); ``isBlocked`` and
``isSuspended`` flags and a ``subscription``. Flags and the subscription are looked for both on
``data`` and in ``data.relations``, and the subscription's expiry is read tolerantly (an
``active`` flag, a ``status`` word, or an end date), because those keys are not documented.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.providers.billit.options import BillitId

ENDED_STATUSES = frozenset({"expired", "ended", "cancelled", "canceled", "inactive", "suspended"})
END_KEYS = ("endsAt", "ends_at", "expiresAt", "expires_at", "validUntil", "valid_until", "endDate")
ACTIVE_KEYS = ("isActive", "is_active", "active")
HOME_COUNTRY = "GR"


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountFacts:
    """The parts of ``/account`` an invoice needs."""

    vats: Mapping[Decimal, BillitId]
    """Vat id by rate (``vats[].value``)."""
    payment_methods: tuple[BillitId, ...]
    biller_id: BillitId | None
    country: str
    """The business's ISO alpha-2 country: domestic customers are from here."""
    refusal: str | None
    """Why Billit will refuse every call (blocked, suspended, subscription ended), or None."""

    def vat_id(self, rate: Decimal) -> BillitId | None:
        return self.vats.get(rate.normalize())


def read_account(body: Any, *, today: date) -> AccountFacts:
    """``AccountFacts`` from a ``/account`` answer; ``ValueError`` when it has no ``data``."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ValueError("Billit /account answered without a data object")  # noqa: TRY004
    relations = _object(data.get("relations"))
    biller = _object(relations.get("biller"))
    methods = relations.get("paymentMethods")
    return AccountFacts(
        vats=_vats(relations.get("vats")),
        payment_methods=tuple(
            m["id"] for m in methods or [] if isinstance(m, dict) and m.get("id") is not None
        ),
        biller_id=biller.get("id"),
        country=_country(biller, relations.get("settings")),
        refusal=_refusal(data, relations, today),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _vats(entries: Any) -> dict[Decimal, BillitId]:
    vats: dict[Decimal, BillitId] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("id") is None:
            continue
        try:
            rate = Decimal(str(entry.get("value"))).normalize()
        except InvalidOperation:
            continue
        # The first entry for a rate wins, as Billit lists its default vats first.
        vats.setdefault(rate, entry["id"])
    return vats


def _country(biller: Mapping[str, Any], settings: Any) -> str:
    for source in (biller, settings if isinstance(settings, dict) else {}):
        country = source.get("country")
        if isinstance(country, str) and len(country.strip()) == 2:
            return country.strip().upper()
    return HOME_COUNTRY


def _refusal(data: Mapping[str, Any], relations: Mapping[str, Any], today: date) -> str | None:
    for flag, words in (("isBlocked", "blocked"), ("isSuspended", "suspended")):
        if data.get(flag) is True or relations.get(flag) is True:
            return f"the Billit account is {words}"
    subscription = data.get("subscription") or relations.get("subscription")
    if isinstance(subscription, dict) and _ended(subscription, today):
        return "the Billit subscription has expired"
    return None


def _ended(subscription: Mapping[str, Any], today: date) -> bool:
    if any(subscription.get(key) is False for key in ACTIVE_KEYS):
        return True
    status = subscription.get("status")
    if isinstance(status, str) and status.strip().casefold() in ENDED_STATUSES:
        return True
    for key in END_KEYS:
        value = subscription.get(key)
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10]) < today
            except ValueError:
                continue
    return False


class AccountCache:
    """The account's facts, fetched at most once per ``ttl`` however many attempts ask at once.

    ``fetch`` returns the facts or raises. Attempts that ask while a fetch is under way wait for
    that same fetch and share its result or its failure, so a provider that hangs costs them one
    timeout together rather than one each in turn. A failed fetch caches nothing: the next
    attempt tries again.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[AccountFacts]],
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._facts: AccountFacts | None = None
        self._fetched_at = 0.0
        self._inflight: asyncio.Task[AccountFacts] | None = None
        self.fetches = 0

    async def facts(self) -> tuple[AccountFacts, bool]:
        """The cached facts (fetching them if stale) and whether they were fetched for this
        call (by it, or by the fetch it waited for)."""
        async with self._lock:
            if self._facts is not None and self._clock() - self._fetched_at < self._ttl:
                return self._facts, False
            if self._inflight is None:
                self.fetches += 1
                self._inflight = asyncio.ensure_future(self._load())
                # Read the failure even when every waiter was cancelled, so none goes unseen.
                self._inflight.add_done_callback(lambda t: t.cancelled() or t.exception())
            task = self._inflight
        # Shielded: one waiter being cancelled (shutdown) must not cancel the others' fetch.
        return await asyncio.shield(task), True

    async def _load(self) -> AccountFacts:
        try:
            facts = await self._fetch()
            self._facts, self._fetched_at = facts, self._clock()
            return facts
        finally:
            self._inflight = None

    def invalidate(self, stale: AccountFacts) -> None:
        """Forget ``stale`` (unless another attempt already replaced it)."""
        if self._facts is stale:
            self._facts = None
