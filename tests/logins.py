"""Least-privilege logins for tests: sql/roles.sql applied, and LOGIN users in its group roles.

Roles are cluster-wide: the group roles stay (roles.sql creates them when missing; every test
database that granted to them is dropped), while each LOGIN user gets a unique name and is
dropped when its block ends.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROLES_SQL = Path(__file__).resolve().parents[1] / "sql" / "roles.sql"


def as_user(dsn: str, user: str, password: str) -> str:
    """The same database URL, logging in as another user."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


async def apply_roles(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(ROLES_SQL.read_text(encoding="utf-8"))
    finally:
        await conn.close()


def user_of(url: str) -> str:
    """The login name in a database URL."""
    return urlsplit(url).username or ""


@asynccontextmanager
async def login(dsn: str, group: str, accounts: tuple[str, ...] = ()) -> AsyncIterator[str]:
    """A URL for a new LOGIN user in ``invoice_sync_<group>``, dropped afterwards; a producer
    is granted ``accounts`` (the snippet in sql/roles.sql's header)."""
    user = f"is{group[0]}_{secrets.token_hex(5)}"
    password = secrets.token_hex(12)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE invoice_sync_{group}"
        )
        for account in accounts:
            await admin.execute(
                "INSERT INTO invoice_sync.producer_account (login, account) VALUES ($1, $2)",
                user,
                account,
            )
        yield as_user(dsn, user, password)
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {user}")
        await admin.close()
