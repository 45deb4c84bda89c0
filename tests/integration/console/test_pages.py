"""Every page renders with data; search and keyset pagination work."""

from __future__ import annotations

import re
from datetime import timedelta

import asyncpg

from tests.factories import enqueue
from tests.integration.console.conftest import (
    ClientFactory,
    add_attempt,
    add_dead,
    add_synced,
)
from worker.console.app import SECURITY_HEADERS


async def seed(pool: asyncpg.Pool) -> None:
    pending_id = await enqueue(pool, "shop", "order-pending")
    await add_attempt(pool, pending_id, "shop", "order-pending", error="HTTP 503: try later")
    await add_synced(pool, 900001, "shop", "order-synced", number="INV-77", provider_id="bc-4711")
    await add_dead(
        pool, 900002, "shop", "order-dead", error="GSTIN invalid", age=timedelta(hours=3)
    )
    await enqueue(pool, "gone", "order-cancelled")
    assert (
        await pool.fetchval(
            "SELECT invoice_sync.cancel('gone', 'order-cancelled', 'customer withdrew')"
        )
        == "cancelled"
    )
    await pool.execute(
        "INSERT INTO invoice_sync.account_state (account, paused, pause_reason, pause_error,"
        " paused_at) VALUES ('other', true, 'credits_expired', 'HTTP 402: top up', now())"
    )


async def test_every_page_renders_with_data(pool: asyncpg.Pool, make_client: ClientFactory) -> None:
    await seed(pool)
    client = await make_client(admin=False)
    pages = {
        "/": [
            "shop",
            "other",
            "credits_expired",
            "HTTP 402: top up",
            "rejected: 1",
            "<svg",
            "gone",
            'class="cancelled">1<',
        ],
        "/invoices": [
            "order-pending",
            "order-synced",
            "order-dead",
            "INV-77",
            "bc-4711",
            "order-cancelled",
            "customer withdrew",
        ],
        "/invoice?account=gone&key=order-cancelled": [
            "cancelled since",
            "customer withdrew",
            "Cancelled by",
        ],
        "/invoice?account=shop&key=order-pending": ["HTTP 503: try later", "attempt 1"],
        "/invoice?account=shop&key=order-synced": ["synced since", "bc-4711", "INV-77"],
        "/invoice?account=shop&key=order-dead": [
            "dead since",
            "GSTIN invalid",
            "/dead-letters/900002",
        ],
        "/dead-letters": ["order-dead", "GSTIN invalid"],
        "/dead-letters/900002": ["GSTIN invalid", "order-dead"],
        "/accounts": ["shop", "billclap", "paused: credits_expired"],
        "/audit": ["No action recorded yet"],
        "/login": ["read-only"],
    }
    for path, expected in pages.items():
        response = await client.get(path)
        text = await response.text()
        assert response.status == 200, (path, text)
        for fragment in expected:
            assert fragment in text, (path, fragment)
        for header, value in SECURITY_HEADERS.items():
            assert response.headers[header] == value, (path, header)
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


async def test_the_overview_chart_draws_the_last_hour(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    for n in range(5):
        await add_synced(
            pool, 800000 + n, "shop", f"k{n}", number=f"N{n}", provider_id=f"p{n}", minutes_ago=2
        )
    await add_synced(pool, 800010, "shop", "old", number="OLD", provider_id="pold", minutes_ago=90)
    client = await make_client(admin=False)
    text = await (await client.get("/")).text()
    assert "5 synced and 0 dead-lettered in the last hour" in text
    assert len(re.findall(r'<rect class="synced"', text)) == 1


async def test_search_finds_by_key_number_and_provider_id(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    await seed(pool)
    client = await make_client(admin=False)
    for query, key in [
        ("order-pending", "order-pending"),
        ("INV-77", "order-synced"),
        ("bc-4711", "order-synced"),
        ("order-dead", "order-dead"),
        ("order-cancelled", "order-cancelled"),
    ]:
        text = await (await client.get("/invoices", params={"q": query})).text()
        assert f">{key}</a>" in text, query
        others = {"order-pending", "order-synced", "order-dead", "order-cancelled"} - {key}
        assert not any(f">{other}</a>" in text for other in others), query
    text = await (
        await client.get("/invoices", params={"q": "order-pending", "account": "x"})
    ).text()
    assert "No invoice matches." in text


async def test_invoices_page_by_keyset(pool: asyncpg.Pool, make_client: ClientFactory) -> None:
    for n in range(60):
        await enqueue(pool, "shop", f"key-{n:03d}")
    await enqueue(pool, "alpha", "key-first")
    client = await make_client(admin=False)
    first = await (await client.get("/invoices", params={"account": "shop"})).text()
    keys = re.findall(r">(key-\d{3})</a>", first)
    assert keys == [f"key-{n:03d}" for n in range(50)]
    assert "key-first" not in first
    next_link = re.search(r'rel="next" href="([^"]+)"', first)
    assert next_link
    second = await (await client.get(next_link.group(1).replace("&amp;", "&"))).text()
    assert re.findall(r">(key-\d{3})</a>", second) == [f"key-{n:03d}" for n in range(50, 60)]
    assert 'rel="next"' not in second
    everyone = await (await client.get("/invoices")).text()
    assert re.findall(r">(key-[a-z0-9]+)</a>", everyone)[0] == "key-first"


async def test_dead_letters_filter_and_page(pool: asyncpg.Pool, make_client: ClientFactory) -> None:
    for n in range(55):
        await add_dead(pool, 1000 + n, "shop", f"d{n}", age=timedelta(minutes=n))
    await add_dead(pool, 2000, "shop", "dup", reason="duplicate", age=timedelta(days=2))
    client = await make_client(admin=False)
    first = await (await client.get("/dead-letters", params={"reason": "rejected"})).text()
    ids = re.findall(r'<a href="/dead-letters/(\d+)">', first)
    assert ids == [str(1000 + n) for n in range(50)]
    next_link = re.search(r'rel="next" href="([^"]+)"', first)
    assert next_link
    second = await (await client.get(next_link.group(1).replace("&amp;", "&"))).text()
    assert re.findall(r'<a href="/dead-letters/(\d+)">', second) == [
        str(1000 + n) for n in range(50, 55)
    ]
    old = await (await client.get("/dead-letters", params={"older_than": "1d"})).text()
    assert re.findall(r'<a href="/dead-letters/(\d+)">', old) == ["2000"]
    bad = await client.get("/dead-letters", params={"reason": "<script>"})
    assert bad.status == 400


async def test_audit_pages_newest_first(pool: asyncpg.Pool, make_client: ClientFactory) -> None:
    await pool.executemany(
        "INSERT INTO invoice_sync.audit (actor, action, rows, reason) VALUES ('ops@h', 'pause', $1, $2)",
        [(n, f"why-{n}") for n in range(55)],
    )
    client = await make_client(admin=False)
    first = await (await client.get("/audit")).text()
    reasons = re.findall(r"<td>(why-\d+)</td>", first)
    assert reasons == [f"why-{n}" for n in range(54, 4, -1)]
    next_link = re.search(r'rel="next" href="([^"]+)"', first)
    assert next_link
    second = await (await client.get(next_link.group(1))).text()
    assert re.findall(r"<td>(why-\d+)</td>", second) == [f"why-{n}" for n in range(4, -1, -1)]
