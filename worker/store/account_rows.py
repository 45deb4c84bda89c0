"""Accounts held in ``invoice_sync.account`` (migration 012): read them, write them, re-key them.

The interface the engine loads accounts through:

- ``account_rows(pool) -> list[AccountRow]``: every row, its secret still sealed (``Sealed``);
  ``worker.engine.database_accounts.load_accounts`` opens the secrets with the config's
  ``Keyring`` and checks each row as an ``AccountSettings`` and against its provider's options.
- ``account_rows_named(pool, names)``: the whole rows of the accounts a claim is about to lease
  rows of for the first time, each with its version; ``account_versions(pool, names)``: the
  versions of named rows (a reload rereads those of the accounts a replica knows, start-up
  looks for the config file's names); ``account_generation``: the table's change counter
  (migration 016), which a poll compares; ``account_fingerprint``: that counter and the count
  of enabled rows; ``account_key_samples``: one secret per key id, which start-up
  opens to catch a missing or wrong key. Only ``account_rows`` (``check-config``'s) returns every
  row: the daemon's reads return the rows it names, or one row, so that its cost does not
  follow the accounts the table holds.
- ``ACCOUNT_CHANNEL`` (``invoice_sync_account``): a statement trigger on the table NOTIFYs it,
  with an empty payload, after every INSERT, UPDATE or DELETE; a replica LISTENing on it reloads
  (and polls as a fallback, since a notification is lost while its connection is down).

Writes (``AccountWriter``) run in one transaction with their audit entry (``audit_append``).
Nothing here sees a secret in the clear: it stores and returns ciphertexts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from worker.sealed import Sealed
from worker.store import database
from worker.store.audit import AuditEntry, audit_append
from worker.store.queries import queries

ACCOUNT_CHANNEL = "invoice_sync_account"


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountRow:
    """One database-held account as stored; ``secret`` sealed (or None: no secret)."""

    name: str
    provider: str
    options: dict[str, Any]
    rate_limit: str
    concurrency: int
    enabled: bool
    secret: Sealed | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AccountRow:
        options = json.loads(row["options"])
        secret = row["secret"]
        return cls(
            name=row["name"],
            provider=row["provider"],
            options=options if isinstance(options, dict) else {},
            rate_limit=row["rate_limit"],
            concurrency=row["concurrency"],
            enabled=row["enabled"],
            secret=None if secret is None else Sealed(bytes(secret), row["secret_key_id"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )


async def account_rows(pool: asyncpg.Pool | asyncpg.Connection) -> list[AccountRow]:
    """Every database-held account, by name, secrets sealed (``pool``: or one connection)."""
    rows = await database.run(lambda: pool.fetch(queries()["account_rows"]))
    return [AccountRow.from_row(row) for row in rows]


class Fingerprint(NamedTuple):
    """The table as a whole: ``value`` is its change counter (``account_generation``, which
    every changing statement bumps), ``enabled`` counts the rows to run."""

    value: str
    enabled: int


async def account_generation(pool: asyncpg.Pool | asyncpg.Connection) -> str:
    """The table's change counter alone (one row read, whatever the accounts): a poll compares
    it with its ``Fingerprint.value`` before reading anything else."""
    value: str = await database.run(lambda: pool.fetchval(queries()["account_generation"]))
    return value


async def account_fingerprint(pool: asyncpg.Pool | asyncpg.Connection) -> Fingerprint:
    """The table's ``Fingerprint``: its change counter and its enabled rows, counted (read
    at start-up, and by a reload once ``account_generation`` has moved)."""
    row = await database.run(lambda: pool.fetchrow(queries()["account_fingerprint"]))
    return Fingerprint(value=row["value"], enabled=row["enabled"])


class AccountVersion(NamedTuple):
    """A row's version (its hash, which changes with any column: ``Fingerprint`` sums them)
    and whether it is enabled."""

    enabled: bool
    version: int


async def account_versions(
    pool: asyncpg.Pool | asyncpg.Connection, names: Collection[str]
) -> dict[str, AccountVersion]:
    """The named accounts that exist, by name, in one query (the others are left out)."""
    rows = await database.run(lambda: pool.fetch(queries()["account_versions"], list(names)))
    return {row["name"]: AccountVersion(row["enabled"], row["version"]) for row in rows}


async def account_key_samples(pool: asyncpg.Pool | asyncpg.Connection) -> list[tuple[str, Sealed]]:
    """One enabled account's (name, sealed secret) per key id the table uses."""
    rows = await database.run(lambda: pool.fetch(queries()["account_key_samples"]))
    return [(row["name"], Sealed(bytes(row["secret"]), row["secret_key_id"])) for row in rows]


ReadAccounts = Mapping[str, "tuple[AccountRow, int] | None"]
"""Accounts read already, by name: each one's row and version (as ``account_rows_named`` gives
them), or None for a name the table does not hold."""


async def account_rows_named(pool: asyncpg.Pool, names: list[str]) -> list[tuple[AccountRow, int]]:
    """The named accounts that exist, whole (secrets sealed), each with its version (as
    ``account_versions`` gives it), in one query."""
    rows = await database.run(lambda: pool.fetch(queries()["account_rows_named"], names))
    return [(AccountRow.from_row(row), row["version"]) for row in rows]


class AccountExistsError(ValueError):
    """``account_insert`` found the name taken."""


class AccountWriter:
    """Changes to database-held accounts, each audited in its own transaction."""

    def __init__(self, pool: asyncpg.Pool, actor: str) -> None:
        self._pool = pool
        self._actor = actor
        self._q = queries()

    async def account_insert(self, row: AccountRow) -> None:
        """Add ``row``; ``AccountExistsError`` if the name is taken."""
        async with database.transaction(self._pool) as conn:
            added = await conn.fetchval(self._q["account_insert"], *self._insert_args(row))
            if added is None:
                raise AccountExistsError(row.name)
            await audit_append(conn, self._entry("account.add", row))

    async def account_update(
        self, name: str, change: Callable[[AccountRow], AccountRow]
    ) -> AccountRow | None:
        """Apply ``change`` (a function from the stored row to the new one) under the row's
        lock; the new row, or None if there is no such account."""
        async with database.transaction(self._pool) as conn:
            found = await conn.fetchrow(self._q["account_row_lock"], name)
            if found is None:
                return None
            row = change(AccountRow.from_row(found))
            await conn.execute(self._q["account_update"], *self._update_args(row))
            await audit_append(conn, self._entry("account.update", row))
            return row

    async def account_delete(self, name: str, *, force: bool) -> tuple[bool, int]:
        """Remove ``name`` unless rows of it are still to send; with ``force``, pause it instead
        (its rows stay, unsent, until it is resumed or they are cancelled). Returns (removed,
        rows still to send); (False, 0) when there is no such account."""
        async with database.transaction(self._pool) as conn:
            if await conn.fetchrow(self._q["account_row_lock"], name) is None:
                return False, 0
            pending: int = await conn.fetchval(self._q["account_unfinished_count"], name)
            if pending == 0:
                await conn.execute(self._q["account_delete"], name)
                await audit_append(conn, self._audit(name, "account.remove", 0))
                return True, 0
            if force:
                await conn.execute(self._q["account_pause"], name, "removed while rows pending")
                await audit_append(conn, self._audit(name, "account.pause", pending))
            return False, pending

    async def account_row(self, name: str) -> AccountRow | None:
        """One account as stored (secret sealed), or None."""
        found = await database.run(lambda: self._pool.fetchrow(self._q["account_row"], name))
        return None if found is None else AccountRow.from_row(found)

    async def account_rekey_batch(
        self, new_key_id: str, limit: int, reseal: Callable[[str, Sealed], Sealed]
    ) -> int:
        """Re-seal up to ``limit`` secrets not under ``new_key_id`` in one transaction
        (``reseal(name, sealed) -> Sealed``); how many were re-sealed (0: done)."""
        async with database.transaction(self._pool) as conn:
            rows = await conn.fetch(self._q["account_rekey_batch"], new_key_id, limit)
            for row in rows:
                sealed = reseal(row["name"], Sealed(bytes(row["secret"]), row["secret_key_id"]))
                await conn.execute(
                    self._q["account_rekey"],
                    row["name"],
                    sealed.ciphertext,
                    sealed.key_id,
                    self._actor,
                )
            if rows:
                target = {"accounts": len(rows), "key_id": new_key_id}
                entry = AuditEntry(
                    actor=self._actor, action="account.rotate-key", target=target, rows=len(rows)
                )
                await audit_append(conn, entry)
            return len(rows)

    async def account_old_key_count(self, key_id: str) -> int:
        """Secrets not under ``key_id`` (left by ``account_rekey_batch``: locked meanwhile)."""
        count: int = await database.run(
            lambda: self._pool.fetchval(self._q["account_old_key_count"], key_id)
        )
        return count

    def _insert_args(self, row: AccountRow) -> tuple[Any, ...]:
        return (
            row.name,
            row.provider,
            json.dumps(row.options),
            row.rate_limit,
            row.concurrency,
            row.enabled,
            *_sealed_args(row),
            self._actor,
        )

    def _update_args(self, row: AccountRow) -> tuple[Any, ...]:
        return (
            row.name,
            json.dumps(row.options),
            row.rate_limit,
            row.concurrency,
            row.enabled,
            *_sealed_args(row),
            self._actor,
        )

    def _entry(self, action: str, row: AccountRow) -> AuditEntry:
        # What changed, never the secret: whether there is one and the key id that seals it.
        target = {
            "account": row.name,
            "provider": row.provider,
            "options": row.options,
            "rate_limit": row.rate_limit,
            "concurrency": row.concurrency,
            "enabled": row.enabled,
            "secret_key_id": row.secret.key_id if row.secret else None,
        }
        return AuditEntry(actor=self._actor, action=action, target=target, rows=1)

    def _audit(self, name: str, action: str, rows: int) -> AuditEntry:
        return AuditEntry(actor=self._actor, action=action, target={"account": name}, rows=rows)


def _sealed_args(row: AccountRow) -> tuple[bytes | None, str | None]:
    if row.secret is None:
        return None, None
    return row.secret.ciphertext, row.secret.key_id
