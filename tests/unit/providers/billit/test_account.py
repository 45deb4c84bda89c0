"""Billit's /account → facts and refusals, and the cache that shares one fetch; no I/O."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.providers.billit.facts import FACTS, TODAY
from worker.providers.billit.account import AccountCache, AccountFacts, read_account

ACCOUNT_BODY: dict[str, Any] = {
    "data": {
        "id": 1,
        "isBlocked": False,
        "isSuspended": False,
        "relations": {
            "biller": {"id": 3, "name": "Biller", "country": "gr"},
            "paymentMethods": [{"id": 5, "name": "Cash"}, {"id": 6}, {"name": "no id"}],
            "vats": [
                {"id": 11, "name": "24%", "value": 24},
                {"id": 12, "name": "13%", "value": "13.00"},
                {"id": 99, "name": "24% again", "value": 24},
                {"id": 13, "name": "6%", "value": 6.0},
                {"id": 14, "name": "0%", "value": 0},
                {"id": 15, "name": "broken", "value": "n/a"},
            ],
            "settings": {},
            "subscription": {"status": "active", "endsAt": "2027-01-01"},
        },
    }
}


def test_account_facts() -> None:
    facts = read_account(ACCOUNT_BODY, today=TODAY)
    assert facts.vats == {Decimal(24): 11, Decimal(13): 12, Decimal(6): 13, Decimal(0): 14}
    assert facts.vat_id(Decimal("24.00")) == 11
    assert facts.payment_methods == (5, 6)
    assert (facts.biller_id, facts.country, facts.refusal) == (3, "GR", None)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"isBlocked": True}, "the Billit account is blocked"),
        ({"isSuspended": True}, "the Billit account is suspended"),
        ({"subscription": {"status": "expired"}}, "the Billit subscription has expired"),
        ({"subscription": {"isActive": False}}, "the Billit subscription has expired"),
        (
            {"subscription": {"endsAt": "2026-07-01T00:00:00Z"}},
            "the Billit subscription has expired",
        ),
        ({"subscription": {"endsAt": "2026-07-02"}}, None),
        ({"subscription": {"endsAt": "soon"}}, None),
    ],
)
def test_account_refusals(change: dict[str, Any], refusal: str | None) -> None:
    body = copy.deepcopy(ACCOUNT_BODY)
    relations = body["data"]["relations"]
    for key, value in change.items():
        (relations if key == "subscription" else body["data"])[key] = value
    assert read_account(body, today=TODAY).refusal == refusal


def test_account_without_data_or_country() -> None:
    with pytest.raises(ValueError, match="data"):
        read_account({"msg": "hello"}, today=TODAY)
    facts = read_account({"data": {}}, today=TODAY)
    assert (facts.vats, facts.payment_methods, facts.country) == ({}, (), "GR")


class Fetcher:
    """A scripted /account fetch: waits for ``gate``, then answers or fails."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> AccountFacts:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("account fetch failed")
        return FACTS


async def test_account_cache_shares_one_fetch_and_its_failure() -> None:
    fetch, now = Fetcher(), [0.0]
    cache = AccountCache(fetch, ttl=60, clock=lambda: now[0])
    fetch.fail = True
    waiting = [asyncio.ensure_future(cache.facts()) for _ in range(3)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert fetch.calls == 1  # one failure for all three, not one timeout each in turn
    fetch.fail = False
    together = await asyncio.gather(*(cache.facts() for _ in range(3)))
    assert together == [(FACTS, True)] * 3
    assert await cache.facts() == (FACTS, False)
    assert (fetch.calls, cache.fetches) == (2, 2)
    now[0] = 61.0
    assert await cache.facts() == (FACTS, True)
    cache.invalidate(FACTS)
    assert await cache.facts() == (FACTS, True)
    assert fetch.calls == 4


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    fetch = Fetcher()
    cache = AccountCache(fetch, ttl=60)
    first = asyncio.ensure_future(cache.facts())
    second = asyncio.ensure_future(cache.facts())
    await asyncio.sleep(0)
    first.cancel()
    fetch.gate.set()
    assert await second == (FACTS, True)
    assert first.cancelled()
    assert fetch.calls == 1
