"""The accounts of one daemon share their TCP connections (``ConnectionPool``), and nothing
else: each request carries its own account's token, and no account sees another's cookies.

A real aiohttp app on loopback stands for the provider; it notes, for each request, the
client's port (the TCP connection it came on), its token and the cookies it sent, and answers
every request with a cookie of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from tests.edges import adapter_for, create_once, serve
from tests.factories import invoice
from worker.config import load_settings
from worker.engine.runtimes import build_runtimes
from worker.invoice import parse_invoice
from worker.outcome import Outcome
from worker.providers.base import Attempt, HttpTimeouts, Provider
from worker.providers.connections import ConnectionPool
from worker.testing.sandbox import PROFILES

BILLCLAP = PROFILES["billclap"]


class Seen:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            {
                "port": peer[1] if peer else None,
                "token": request.headers.get("x-api-token"),
                "cookie": request.headers.get("Cookie"),
            }
        )
        token = request.headers.get("x-api-token", "")
        response = web.json_response({"status": 400, "message": "no"}, status=400)
        response.set_cookie("sid", f"of-{token}")
        return response


async def send(provider: Provider) -> Outcome:
    """One create through ``provider``, which stays open (as an account's runtime does
    until it retires)."""
    doc = invoice(currency=BILLCLAP.currency, provider_options=BILLCLAP.sample_options(1))
    attempt = Attempt(
        outbox_id=1,
        account="edge",
        idempotency_key="edge-1",
        invoice=parse_invoice(doc),
        number=1,
        prior_unknown=False,
    )
    return await provider.create_invoice(attempt)


async def two_accounts_one_after_the_other(timeouts: HttpTimeouts) -> list[dict[str, Any]]:
    """Account a sends, then b, then a again; what the provider saw."""
    seen = Seen()
    async with serve(seen.handle) as address:
        # A host name, not an IP address: aiohttp keeps no cookie an IP address sets.
        url = address.replace("127.0.0.1", "localhost")
        a = adapter_for(BILLCLAP, url, token="token-of-a", timeouts=timeouts)
        b = adapter_for(BILLCLAP, url, token="token-of-b", timeouts=timeouts)
        try:
            for provider in (a, b, a):
                await send(provider)
        finally:
            await a.aclose()
            await b.aclose()
    return seen.requests


async def test_a_second_account_reuses_the_first_ones_connection_with_its_own_token() -> None:
    pool = ConnectionPool()
    first, second, third = await two_accounts_one_after_the_other(
        HttpTimeouts(connect=1.0, total=5.0, pool=pool)
    )
    assert first["port"] == second["port"] == third["port"]  # one TCP connection
    assert [r["token"] for r in (first, second, third)] == [
        "token-of-a",
        "token-of-b",
        "token-of-a",
    ]
    assert second["cookie"] is None  # a's cookie stayed in a's session ...
    assert third["cookie"] == "sid=of-token-of-a"  # ... and b's in b's
    assert pool.open_sessions == 0


async def test_without_a_pool_each_session_has_its_own_connections() -> None:
    first, second, third = await two_accounts_one_after_the_other(
        HttpTimeouts(connect=1.0, total=5.0)
    )
    assert first["port"] != second["port"]
    assert first["port"] == third["port"]


async def test_the_shared_connector_closes_with_its_last_session_and_reopens() -> None:
    seen = Seen()
    pool = ConnectionPool()
    timeouts = HttpTimeouts(connect=1.0, total=5.0, pool=pool)
    async with serve(seen.handle) as url:
        a = adapter_for(BILLCLAP, url, token="token-of-a", timeouts=timeouts)
        b = adapter_for(BILLCLAP, url, token="token-of-b", timeouts=timeouts)
        await create_once(BILLCLAP, a)  # closes a
        connector = pool._connector
        assert connector is None or connector.closed
        # b still open while a is used again: both on one connector, closed after both.
        session_b = b._client()  # type: ignore[attr-defined]
        await create_once(BILLCLAP, a)
        assert pool.open_sessions == 1
        connector = session_b.connector
        assert connector is not None
        assert not connector.closed
        await b.aclose()
        assert pool.open_sessions == 0
        assert connector.closed
    assert len(seen.requests) == 2


ACCOUNTS = """
database_url = "postgresql://app@db/invoices"
[accounts.a]
provider = "billclap"
base_url = "https://api.billclap.com"
token = "tok-123456"
[accounts.b]
provider = "billclap"
base_url = "https://api.billclap.com"
token = "tok-654321"
"""


def test_the_daemons_runtimes_share_one_pool(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ACCOUNTS)
    runtimes = build_runtimes(load_settings(path))
    a, b = (runtimes[n].provider._timeouts.pool for n in "ab")  # type: ignore[attr-defined]
    assert a is not None
    assert a is b
