"""The console against a real PostgreSQL, through aiohttp's test server and client (real HTTP
on loopback), read-only or with an admin token."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from worker.console.app import build_app
from worker.console.auth import AdminAuth
from worker.console.overview import ConfiguredAccount
from worker.console.throttle import LoginThrottle

ADMIN_TOKEN = "console-admin-token-0123456789abcdef"
ACCOUNTS = {"shop": ConfiguredAccount(provider="billclap", rate_limit="60/60s", concurrency=4)}

Client: TypeAlias = "TestClient[web.Request, web.Application]"
ClientFactory: TypeAlias = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client(pool: asyncpg.Pool) -> AsyncIterator[ClientFactory]:
    clients: list[Client] = []

    async def make(
        *,
        admin: bool,
        login_throttle: LoginThrottle | None = None,
        secure_cookies: bool | None = None,
    ) -> Client:
        auth = AdminAuth(user="admin", token=SecretStr(ADMIN_TOKEN), ttl=3600) if admin else None
        app = build_app(
            pool,
            auth=auth,
            accounts=ACCOUNTS,
            database="127.0.0.1:5432/test",
            login_throttle=login_throttle,
            secure_cookies=secure_cookies,
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def log_in(client: Client) -> str:
    """Log in as the admin; the CSRF token the pages now carry."""
    page = await (await client.get("/login")).text()
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page)
    assert login_csrf
    done = await client.post(
        "/login",
        data={"user": "admin", "token": ADMIN_TOKEN, "login_csrf": login_csrf.group(1)},
        allow_redirects=False,
    )
    assert done.status == 303, await done.text()
    return await csrf_of(client)


async def csrf_of(client: Client) -> str:
    page = await (await client.get("/accounts")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def add_synced(
    pool: asyncpg.Pool,
    outbox_id: int,
    account: str,
    key: str,
    *,
    number: str,
    provider_id: str,
    minutes_ago: float = 1,
) -> None:
    await pool.execute(
        "INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,"
        " provider_invoice_id, invoice_number, link, attempts, synced_at)"
        " VALUES ($1, $2, $3, 'billclap', $4, $5, 'https://provider.example/i/1', 1, $6)",
        outbox_id,
        account,
        key,
        provider_id,
        number,
        datetime.now(UTC) - timedelta(minutes=minutes_ago),
    )


async def add_dead(
    pool: asyncpg.Pool,
    outbox_id: int,
    account: str,
    key: str,
    *,
    reason: str = "rejected",
    error: str = "HTTP 422: refused",
    payload: dict[str, object] | None = None,
    age: timedelta = timedelta(0),
) -> None:
    await pool.execute(
        "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload,"
        " reason, error, http_status, attempts, dead_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6,"
        " 422, 1, $7)",
        outbox_id,
        account,
        key,
        json.dumps(payload or {"number": key}),
        reason,
        error,
        datetime.now(UTC) - age,
    )


async def add_attempt(
    pool: asyncpg.Pool,
    outbox_id: int,
    account: str,
    key: str,
    *,
    claim: int = 1,
    outcome: str = "retry",
    error: str | None = "HTTP 503",
    reason: str | None = None,
) -> None:
    await pool.execute(
        "INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key, attempt,"
        " worker, provider, started_at, duration_ms, http_status, outcome, reason, error,"
        "outcome_unknown) VALUES ($1, $2::int8, $3, $4, $2::int4, 'w1', 'billclap', now(), 12, 503, $5,"
        " $6, $7, false)",
        outbox_id,
        claim,
        account,
        key,
        outcome,
        reason,
        error,
    )
