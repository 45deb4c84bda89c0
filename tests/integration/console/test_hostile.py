"""Producer and provider text is escaped on every page, and no secret is ever rendered."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs
from yarl import URL

from tests.factories import enqueue, invoice
from tests.integration.console.conftest import (
    ADMIN_TOKEN,
    ClientFactory,
    add_attempt,
    add_dead,
    log_in,
)
from worker.config import load_settings
from worker.config.database_url import dsn_location
from worker.console.app import build_app
from worker.console.serve import admin_auth, configured_accounts

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "\u202eevil\u202c",
    "' onmouseover='alert(1)",
]


async def test_hostile_strings_are_escaped_everywhere(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    for n, text in enumerate(HOSTILE):
        key = f"{text}-{n}"
        row_id = await enqueue(pool, text, key, invoice(number=text, notes=text))
        await add_attempt(pool, row_id, text, key, error=text, reason=text)
        await add_dead(
            pool, 5000 + n, text, f"dead{key}", error=text, payload={"number": text, "x": text}
        )
        await pool.execute(
            "INSERT INTO invoice_sync.account_state (account, paused, pause_reason, pause_error)"
            " VALUES ($1, true, $1, $1)",
            text,
        )
        await pool.execute(
            "INSERT INTO invoice_sync.audit (actor, action, target, reason) VALUES ($1, 'pause', jsonb_build_object('a', $1::text), $1)",
            text,
        )
    client = await make_client(admin=True)
    await log_in(client)
    paths = ["/", "/invoices", "/dead-letters", "/accounts", "/audit"]
    for n, text in enumerate(HOSTILE):
        paths += [f"/dead-letters/{5000 + n}"]
        paths += [str(URL("/invoice").with_query(account=text, key=f"{text}-{n}"))]
        paths += [str(URL("/invoices").with_query(q=f"{text}-{n}"))]
    for path in paths:
        response = await client.get(path)
        page = await response.text()
        assert response.status == 200, (path, page)
        assert "<script" not in page, path
        assert "<img" not in page, path
        assert "onmouseover='" not in page, path
    text = await (await client.get("/invoices", params={"q": f"{HOSTILE[0]}-0"})).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;-0" in text


async def test_no_secret_reaches_any_page(
    pool: asyncpg.Pool, make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config's secrets (admin token, account token, database password) planted; every
    page of a console built from that config is grepped for them."""
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    config = tmp_path / "invoice-sync.toml"
    config.write_text(
        'database_url = "postgresql://ops:db-password-s3cret@db.internal:5432/billing"\n'
        f'[console]\nadmin_token_file = "{token_file}"\n'
        '[accounts.shop]\nprovider = "billclap"\nbase_url = "https://api.billclap.example"\n'
        'token = "account-token-s3cret"\n'
    )
    for name in list(os.environ):
        if name.startswith("INVOICE_SYNC_"):
            monkeypatch.delenv(name)
    settings = load_settings(config)
    secrets = [ADMIN_TOKEN, "db-password-s3cret", "account-token-s3cret"]
    assert set(secrets) <= set(settings.secrets())
    await add_dead(pool, 1, "shop", "k1")
    await enqueue(pool, "shop", "k2")
    app = build_app(
        pool,
        auth=admin_auth(settings),
        accounts=configured_accounts(settings),
        database=dsn_location(settings.database_dsn()),
    )
    async with TestClient(TestServer(app)) as client:
        await log_in(client)
        pages = [
            "/",
            "/invoices",
            "/invoice?account=shop&key=k2",
            "/dead-letters",
            "/dead-letters/1",
            "/dead-letters/bulk?action=replay",
            "/accounts",
            "/audit",
            "/login",
        ]
        for path in pages:
            page = await (await client.get(path)).text()
            for secret in secrets:
                assert secret not in page, (path, secret)
            assert "db.internal:5432/billing" in page, path
        overview = await (await client.get("/")).text()
        assert "ops@" not in overview
        assert "ops:" not in overview


async def test_a_rebound_host_name_reads_nothing(pool: asyncpg.Pool, tmp_path: Path) -> None:
    # DNS rebinding: a page on evil.example re-points its name at 127.0.0.1 and reads the
    # console as its own origin; the Host it sends is its own name, which is refused.
    config = tmp_path / "c.toml"
    config.write_text(
        'database_url = "postgresql://localhost/x"\n[console]\nlisten = "127.0.0.1:0"\n'
    )
    settings = load_settings(config)
    await enqueue(pool, "shop", "k-rebound", invoice(notes="private-customer-note"))
    app = build_app(pool, auth=None, accounts={}, database="here", hosts=settings.console.hosts())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for host in ["evil.example", "evil.example:80", "127.0.0.1.evil.example"]:
            refused = await client.get("/invoices?account=shop", headers={"Host": host})
            assert refused.status == 421, host
            assert "private-customer-note" not in await refused.text()
        for host in [f"127.0.0.1:{client.port}", "localhost", "LOCALHOST.", "[::1]:9465"]:
            shown = await client.get("/invoices?account=shop", headers={"Host": host})
            assert shown.status == 200, host


async def test_a_stored_link_that_is_not_a_web_address_is_shown_as_text(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    # Stored before the policy dropped such links (or by hand): never an href.
    for n, link in enumerate(["javascript:alert(document.cookie)", "https://app.example/i/1"]):
        await pool.execute(
            "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
            " provider_invoice_id, link, attempts) VALUES ($1, 'shop', $2, 'billclap', '1', $3, 1)",
            n + 1,
            f"k{n}",
            link,
        )
    client = await make_client(admin=True)
    await log_in(client)
    evil = await (await client.get("/invoice?account=shop&key=k0")).text()
    assert "javascript:alert(document.cookie)" in evil
    assert 'href="javascript:' not in evil
    good = await (await client.get("/invoice?account=shop&key=k1")).text()
    assert 'href="https://app.example/i/1"' in good


BAD_READS = [
    "/audit?before=%C2%B2",
    "/audit?before=99999999999999999999999",
    "/audit?before=0",
    "/dead-letters/99999999999999999999999",
    "/dead-letters/%D9%A3",
    "/dead-letters?after=2026-01-01T00:00:00%2B00:00~99999999999999999999",
    "/dead-letters?after=0001-01-01T00:00:00%2B14:00~1",
    "/dead-letters?after=2026-01-01T00:00:00~1",
    "/dead-letters?older_than=99999999999d",
    "/dead-letters?account=shop%00",
    "/invoices?q=a%00b",
    "/invoices?account=shop%00",
    "/invoices?after_account=shop%00&after_key=k",
    "/invoice?account=shop&key=k%00",
]


@pytest.mark.parametrize("path", BAD_READS)
async def test_bad_input_is_a_400_not_a_database_error(
    pool: asyncpg.Pool, make_client: ClientFactory, path: str
) -> None:
    # Input PostgreSQL cannot take (an id past bigint, a NUL, a date before year 1) is the
    # operator's mistake: a 400 saying so, never a 500 or a 503 "database unavailable".
    client = await make_client(admin=False)
    with capture_logs() as logs:
        answer = await client.get(path)
    assert answer.status == 400, (path, await answer.text())
    assert [e for e in logs if e["event"] == "console.store_error"] == []


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/dead-letters/99999999999999999999999/purge", {"reason": "r"}),
        ("/dead-letters/7/purge", {"reason": "r\x00"}),
        ("/accounts/pause", {"account": "shop\x00", "reason": "r"}),
        ("/accounts/pause", {"account": "shop", "reason": "r\x00"}),
        ("/accounts/pause", {"account": "x" * 201, "reason": "r"}),
        ("/accounts/resume", {"account": "x" * 201, "reason": "r"}),
        ("/invoice/cancel", {"account": "shop", "key": "k\x00", "reason": "r"}),
        ("/invoice/cancel", {"account": "shop", "key": "k", "reason": "r\x00"}),
    ],
)
async def test_a_bad_action_form_is_a_400_and_changes_nothing(
    pool: asyncpg.Pool, make_client: ClientFactory, path: str, form: dict[str, str]
) -> None:
    await add_dead(pool, 7, "shop", "k7")
    client = await make_client(admin=True)
    csrf = await log_in(client)
    with capture_logs() as logs:
        answer = await client.post(path, data={**form, "csrf": csrf})
    assert answer.status == 400, (path, form, await answer.text())
    assert [e for e in logs if e["event"] == "console.store_error"] == []
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.dead_letter") == 1
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.account_state") == 0
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.audit") == 0


async def test_a_key_holding_a_tab_is_listed_paged_past_and_opened(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    # The outbox does not forbid control characters in keys: such a row must not stop the list.
    await enqueue(pool, "shop", "k1\tz", invoice(number="T-1"))
    client = await make_client(admin=True)
    await log_in(client)
    page = await client.get(str(URL("/invoice").with_query(account="shop", key="k1\tz")))
    assert page.status == 200
    listed = await client.get(
        str(URL("/invoices").with_query(after_account="shop", after_key="k0"))
    )
    assert listed.status == 200
    refused = await client.get(str(URL("/invoice").with_query(account="shop", key="k1\x00")))
    assert refused.status == 400
