"""Auth and actions: read-only refuses, CSRF is checked, every action is audited as the login."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from http.cookies import Morsel

import asyncpg
import pytest
from aiohttp import ClientResponse
from structlog.testing import capture_logs

from tests.factories import enqueue, invoice
from tests.integration.console.conftest import (
    ADMIN_TOKEN,
    Client,
    ClientFactory,
    add_dead,
    csrf_of,
    log_in,
)
from worker.console.auth import LOGIN_COOKIE, SESSION_COOKIE
from worker.console.throttle import LoginThrottle


async def audit_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT actor, action, target, rows, reason FROM invoice_sync.audit ORDER BY id"
    )
    return rows


async def test_a_read_only_console_hides_actions_and_refuses_posts(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    await add_dead(pool, 7, "shop", "k7")
    client = await make_client(admin=False)
    for path in ["/dead-letters/7", "/accounts", "/dead-letters"]:
        text = await (await client.get(path)).text()
        assert 'method="post"' not in text, path
    for path in [
        "/accounts/pause",
        "/dead-letters/7/replay",
        "/dead-letters/7/purge",
        "/invoice/cancel",
        "/login",
    ]:
        response = await client.post(path, data={"reason": "x", "csrf": "x"})
        assert response.status == 403, path
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.dead_letter") == 1
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.account_state") == 0
    assert await audit_rows(pool) == []


async def test_actions_need_a_login_and_its_csrf_token(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    client = await make_client(admin=True)
    anonymous = await client.post("/accounts/pause", data={"account": "shop", "reason": "why"})
    assert anonymous.status == 403
    csrf = await log_in(client)
    forged = await client.post(
        "/accounts/pause", data={"account": "shop", "reason": "why", "csrf": csrf[:-2] + "xx"}
    )
    assert forged.status == 403
    missing = await client.post("/accounts/pause", data={"account": "shop", "reason": "why"})
    assert missing.status == 403
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.account_state") == 0
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies(
        {SESSION_COOKIE: "e30.forged"}, response_url=client.make_url("/")
    )
    tampered = await client.post(
        "/accounts/pause", data={"account": "shop", "reason": "why", "csrf": csrf}
    )
    assert tampered.status == 403
    assert await audit_rows(pool) == []


async def test_a_wrong_token_does_not_log_in(make_client: ClientFactory) -> None:
    client = await make_client(admin=True)
    page = await (await client.get("/login")).text()
    login_csrf = page.split('name="login_csrf" value="')[1].split('"')[0]
    wrong = await client.post(
        "/login",
        data={"user": "admin", "token": ADMIN_TOKEN + "x", "login_csrf": login_csrf},
        allow_redirects=False,
    )
    assert wrong.status == 403
    assert SESSION_COOKIE not in {c.key for c in client.session.cookie_jar}
    no_csrf = await client.post(
        "/login", data={"user": "admin", "token": ADMIN_TOKEN}, allow_redirects=False
    )
    assert no_csrf.status == 403


async def log_in_cookies(
    client: Client, headers: dict[str, str] | None = None
) -> tuple[Morsel[str], Morsel[str]]:
    """The pre-login cookie the form sets and the session cookie the login sets."""
    form = await client.get("/login", headers=headers)
    page = await form.text()
    login_csrf = page.split('name="login_csrf" value="')[1].split('"')[0]
    login_cookie = form.cookies[LOGIN_COOKIE]
    # Sent by hand: the client's jar keeps a Secure cookie from an http:// test server.
    done = await client.post(
        "/login",
        data={"user": "admin", "token": ADMIN_TOKEN, "login_csrf": login_csrf},
        headers={**(headers or {}), "Cookie": f"{LOGIN_COOKIE}={login_cookie.value}"},
        allow_redirects=False,
    )
    assert done.status == 303
    return login_cookie, done.cookies[SESSION_COOKIE]


async def test_the_session_cookie_is_http_only_and_strict(make_client: ClientFactory) -> None:
    client = await make_client(admin=True)
    for cookie in await log_in_cookies(client):
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        # Plain http on loopback (the demo): a Secure cookie would never come back.
        assert not cookie["secure"]


@pytest.mark.parametrize(
    ("secure_cookies", "headers", "secure"),
    [
        (True, None, True),
        (False, {"X-Forwarded-Proto": "https"}, False),
        (None, {"X-Forwarded-Proto": "https"}, True),
        (None, {"X-Forwarded-Proto": "http"}, False),
    ],
)
async def test_cookies_are_secure_as_configured_or_over_https(
    make_client: ClientFactory,
    secure_cookies: bool | None,
    headers: dict[str, str] | None,
    secure: bool,
) -> None:
    client = await make_client(admin=True, secure_cookies=secure_cookies)
    for cookie in await log_in_cookies(client, headers):
        assert bool(cookie["secure"]) is secure, cookie.OutputString()
        assert cookie["httponly"] is True


async def test_pause_and_resume_are_audited_as_the_login(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    client = await make_client(admin=True)
    csrf = await log_in(client)
    paused = await client.post(
        "/accounts/pause", data={"account": "shop", "reason": "provider outage", "csrf": csrf}
    )
    assert paused.status == 200
    assert await pool.fetchval(
        "SELECT paused FROM invoice_sync.account_state WHERE account = 'shop'"
    )
    resumed = await client.post(
        "/accounts/resume", data={"account": "shop", "reason": "fixed", "csrf": csrf}
    )
    assert resumed.status == 200
    assert not await pool.fetchval(
        "SELECT paused FROM invoice_sync.account_state WHERE account = 'shop'"
    )
    rows = await audit_rows(pool)
    assert [
        (r["actor"], r["action"], json.loads(r["target"]), r["rows"], r["reason"]) for r in rows
    ] == [
        ("admin", "pause", {"account": "shop"}, 1, "provider outage"),
        ("admin", "resume", {"account": "shop"}, 1, "fixed"),
    ]
    text = await (await client.get("/audit")).text()
    assert "provider outage" in text
    no_reason = await client.post("/accounts/pause", data={"account": "shop", "csrf": csrf})
    assert no_reason.status == 400
    no_account = await client.post("/accounts/pause", data={"reason": "why", "csrf": csrf})
    assert no_account.status == 400


async def test_the_accounts_page_pauses_names_no_url_path_could_carry(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    # A name may hold "/" or be "..": it travels in the form, never in the action's path.
    client = await make_client(admin=True)
    csrf = await log_in(client)
    for name in ["eu/shop", "..", "a b?c"]:
        await pool.execute(
            "INSERT INTO invoice_sync.account_state (account, paused) VALUES ($1, false)", name
        )
        page = await (await client.get("/accounts")).text()
        form = page.split(f'name="account" value="{html.escape(name)}"')[0].rsplit("<form", 1)[1]
        action = form.split('action="')[1].split('"')[0]
        assert action == "/accounts/pause"
        done = await client.post(action, data={"account": name, "reason": "r", "csrf": csrf})
        assert done.status == 200, name
        assert await pool.fetchval(
            "SELECT paused FROM invoice_sync.account_state WHERE account = $1", name
        ), name


async def test_replay_with_a_corrected_payload_and_purge_are_audited(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    await add_dead(pool, 11, "shop", "k11")
    await add_dead(pool, 12, "shop", "k12")
    client = await make_client(admin=True)
    csrf = await log_in(client)
    bad = await client.post(
        "/dead-letters/11/replay", data={"reason": "r", "csrf": csrf, "payload": '{"lines": []}'}
    )
    assert bad.status == 400
    fixed = json.dumps(invoice(number="FIXED-11"))
    done = await client.post(
        "/dead-letters/11/replay", data={"reason": "GSTIN fixed", "csrf": csrf, "payload": fixed}
    )
    assert "Replayed 1 of 1" in await done.text()
    number = await pool.fetchval(
        "SELECT payload->>'number' FROM invoice_sync.outbox WHERE idempotency_key = 'k11'"
    )
    assert number == "FIXED-11"
    again = await client.post("/dead-letters/11/replay", data={"reason": "twice", "csrf": csrf})
    assert "already replayed" in await again.text()
    purged = await client.post("/dead-letters/12/purge", data={"reason": "test data", "csrf": csrf})
    assert "Purged 1 dead letter." in await purged.text()
    rows = [
        (r["action"], json.loads(r["target"]), r["rows"], r["reason"])
        for r in await audit_rows(pool)
    ]
    assert rows == [
        ("replay", {"ids": [11], "corrected_payload": True}, 1, "GSTIN fixed"),
        ("replay", {"ids": [11], "corrected_payload": False}, 0, "twice"),
        ("purge", {"ids": [12]}, 1, "test data"),
    ]


async def test_a_corrected_payload_postgresql_cannot_store_is_refused_plainly(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    # jsonb holds no NUL and no unpaired surrogate: a 400 naming that, not a 503 "database
    # unavailable" after the store refused it, and the dead letter stays as it was.
    await add_dead(pool, 21, "shop", "k21")
    client = await make_client(admin=True)
    csrf = await log_in(client)
    nul = json.dumps(invoice(number="N-21", notes="a\u0000b"))
    surrogate = json.dumps(invoice(number="S-21", notes="a\ud800b"))
    for payload, says in [(nul, "PostgreSQL cannot store"), (surrogate, "hex escape")]:
        answer = await client.post(
            "/dead-letters/21/replay", data={"reason": "r", "csrf": csrf, "payload": payload}
        )
        assert answer.status == 400, payload
        assert says in await answer.text()
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
    assert await audit_rows(pool) == []


async def test_a_bulk_replay_shows_its_count_and_needs_confirmation(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    for n in range(3):
        await add_dead(
            pool, 100 + n, "shop", f"b{n}", reason="credits_expired", age=timedelta(hours=2)
        )
    await add_dead(pool, 200, "shop", "other", reason="rejected")
    client = await make_client(admin=True)
    csrf = await log_in(client)
    preview = await (
        await client.get(
            "/dead-letters/bulk", params={"action": "replay", "reason": "credits_expired"}
        )
    ).text()
    assert "This would replay <strong>3</strong> dead letters" in preview
    form = {
        "action": "replay",
        "filter_reason": "credits_expired",
        "account": "",
        "older_than": "1h",
        "ids": confirm_form(preview)["ids"],
        "reason": "topped up",
        "csrf": csrf,
    }
    unconfirmed = await client.post("/dead-letters/bulk", data=form)
    assert unconfirmed.status == 400
    done = await client.post("/dead-letters/bulk", data={**form, "confirm": "yes"})
    assert "Replayed 3 of 3" in await done.text()
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 3
    [entry] = await audit_rows(pool)
    target = json.loads(entry["target"])
    assert (entry["action"], entry["rows"], entry["reason"]) == ("replay", 3, "topped up")
    assert target["filter"] == {"reason": "credits_expired", "account": None, "older_than": 3600.0}
    assert sorted(target["ids"]) == [100, 101, 102]
    assert await csrf_of(client) == csrf


async def test_cancel_withdraws_a_pending_invoice_audited_as_the_login(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    await enqueue(pool, "shop", "order-1")
    running = await enqueue(pool, "shop", "order-2")
    await pool.execute("UPDATE invoice_sync.outbox SET state = 'running' WHERE id = $1", running)
    page = "/invoice?account=shop&key=order-1"
    reader = await make_client(admin=False)
    assert 'id="cancel-form"' not in await (await reader.get(page)).text()
    client = await make_client(admin=True)
    csrf = await log_in(client)
    assert 'id="cancel-form"' in await (await client.get(page)).text()
    form = {"account": "shop", "key": "order-1", "csrf": csrf}
    forged = await client.post("/invoice/cancel", data={**form, "csrf": csrf[:-2] + "xx"})
    assert forged.status == 403
    no_reason = await client.post("/invoice/cancel", data=form)
    assert no_reason.status == 400
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.cancelled") == 0

    done = await client.post("/invoice/cancel", data={**form, "reason": "customer withdrew"})
    text = await done.text()
    assert done.status == 200
    assert "Cancelled: shop order-1" in text
    assert '<strong id="state">cancelled</strong>' in text
    again = await client.post("/invoice/cancel", data={**form, "reason": "twice"})
    assert "Already cancelled" in await again.text()
    busy = await client.post(
        "/invoice/cancel", data={**form, "key": "order-2", "reason": "too late?"}
    )
    assert "Not cancelled: shop order-2 is in_flight" in await busy.text()

    row = await pool.fetchrow("SELECT reason FROM invoice_sync.cancelled")
    assert row["reason"] == "customer withdrew"
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 1
    rows = [
        (r["actor"], r["action"], json.loads(r["target"]), r["rows"], r["reason"])
        for r in await audit_rows(pool)
    ]
    target = {"account": "shop", "idempotency_key": "order-1"}
    assert rows == [
        ("admin", "cancel", {**target, "state": "cancelled"}, 1, "customer withdrew"),
        ("admin", "cancel", {**target, "state": "cancelled"}, 0, "twice"),
        (
            "admin",
            "cancel",
            {**target, "idempotency_key": "order-2", "state": "in_flight"},
            0,
            "too late?",
        ),
    ]
    shown = await (await client.get(page)).text()
    assert "cancelled since" in shown
    assert "customer withdrew" in shown
    assert 'id="cancel-form"' not in shown


def confirm_form(page: str) -> dict[str, str]:
    """The bulk preview's form as a browser would post it (its hidden fields and the box)."""
    form = page.split('id="bulk-form"')[1].split("</form>", maxsplit=1)[0]
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    return {name: html.unescape(value) for name, value in hidden} | {"confirm": "yes"}


async def test_a_bulk_action_touches_only_the_rows_the_operator_confirmed(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    for n in range(3):
        await add_dead(pool, 100 + n, "shop", f"b{n}", age=timedelta(hours=2))
    client = await make_client(admin=True)
    await log_in(client)
    preview = await client.get("/dead-letters/bulk", params={"action": "purge", "older_than": "1h"})
    page = await preview.text()
    assert "This would purge <strong>3</strong> dead letters" in page
    # Between the preview and the confirmation a worker dead-letters a row that the filter
    # selects (or an older_than lets one age into it): it is not among the three confirmed.
    await add_dead(pool, 50, "shop", "late", age=timedelta(hours=3))
    done = await client.post("/dead-letters/bulk", data=confirm_form(page) | {"reason": "stale"})
    assert "Purged 3 dead letters" in await done.text()
    assert await pool.fetchval("SELECT array_agg(outbox_id) FROM invoice_sync.dead_letter") == [50]
    [entry] = await audit_rows(pool)
    assert sorted(json.loads(entry["target"])["ids"]) == [100, 101, 102]


async def test_a_bulk_action_on_rows_that_changed_since_the_preview_does_nothing(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    for n in range(3):
        await add_dead(pool, 100 + n, "shop", f"b{n}", reason="credits_expired")
    client = await make_client(admin=True)
    await log_in(client)
    page = await (
        await client.get(
            "/dead-letters/bulk", params={"action": "replay", "reason": "credits_expired"}
        )
    ).text()
    # Another operator purges one of the three before this one confirms.
    await pool.execute("DELETE FROM invoice_sync.dead_letter WHERE outbox_id = 101")
    answer = await client.post("/dead-letters/bulk", data=confirm_form(page) | {"reason": "r"})
    assert answer.status == 400
    assert "changed since the preview" in await answer.text()
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.dead_letter") == 2
    assert await audit_rows(pool) == []


async def test_guessing_the_login_is_slowed_down_and_logged(make_client: ClientFactory) -> None:
    # The throttle's clock stands still: the test cannot outlast a lockout on a slow machine.
    client = await make_client(admin=True, login_throttle=LoginThrottle(now=lambda: 1000.0))
    page = await (await client.get("/login")).text()
    login_csrf = page.split('name="login_csrf" value="')[1].split('"')[0]

    async def attempt(token: str) -> ClientResponse:
        form = {"user": "admin", "token": token, "login_csrf": login_csrf}
        return await client.post("/login", data=form, allow_redirects=False)

    with capture_logs() as logs:
        answers = [(await attempt(f"guess-{n}-0123456789abcdef")).status for n in range(8)]
        # Locked out now: even the right token is not compared.
        right = await attempt(ADMIN_TOKEN)
    assert answers == [403] * 6 + [429] * 2
    assert right.status == 429
    assert right.headers["Retry-After"] == "1"
    assert SESSION_COOKIE not in {c.key for c in client.session.cookie_jar}
    failed = [e for e in logs if e["event"] == "console.login_failed"]
    assert [(e["log_level"], e["failures"]) for e in failed] == [
        ("warning", n) for n in range(1, 7)
    ]
    assert "guess-" not in repr(logs)
    assert ADMIN_TOKEN not in repr(logs)


async def test_a_logged_out_session_cookie_is_refused(
    pool: asyncpg.Pool, make_client: ClientFactory
) -> None:
    client = await make_client(admin=True)
    csrf = await log_in(client)
    saved = {c.key: c.value for c in client.session.cookie_jar}[SESSION_COOKIE]
    out = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    # Someone kept a copy of the cookie (a shared machine, a proxy log): it no longer works.
    client.session.cookie_jar.update_cookies(
        {SESSION_COOKIE: saved}, response_url=client.make_url("/")
    )
    replayed = await client.post(
        "/accounts/pause", data={"account": "shop", "reason": "why", "csrf": csrf}
    )
    assert replayed.status == 403
    assert 'action="/logout"' not in await (await client.get("/accounts")).text()
    assert await audit_rows(pool) == []
