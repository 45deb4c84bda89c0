"""The store: one method per named query in ``sql/queries.sql``, each named after its query.

The engine calls these with domain values and never sees SQL; ``worker.store.database`` runs the SQL
and never sees an invoice.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import asyncpg
import orjson

from worker.claims import AccountAction, AttemptFacts, Claimed, Resolution
from worker.invoice import MAX_PAYLOAD_BYTES
from worker.store import database
from worker.store.account_rows import AccountRow
from worker.store.queries import queries
from worker.store.staging import STAGING_COLUMNS, EnqueueRow, Staged, staged


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimRequest:
    """How many rows an account has room for, and its deployment-wide token bucket."""

    rows: int
    rate: float
    """Tokens per second."""
    burst: float
    """The most tokens the bucket holds (>= 1)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadAtClaim:
    """A due row whose payload was over ``MAX_PAYLOAD_BYTES``: the claim moved it to the dead
    letters (``invalid_payload``) without reading its payload."""

    id: int
    account: str
    idempotency_key: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class FinishedAtClaim:
    """A due row whose key was already ``state``: synced, cancelled, or dead_letter (an open
    dead letter whose outcome is unknown). Inserted while the flush or cancel that finished the
    key was being committed, or past the insert trigger (a bulk load). Deleted unsent."""

    id: int
    account: str
    idempotency_key: str
    state: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimResult:
    rows: list[Claimed]
    token_waits: dict[str, float]
    """Accounts whose bucket ran out before their rows did: seconds until the next token."""
    dead: list[DeadAtClaim] = field(default_factory=list)
    finished: list[FinishedAtClaim] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadyWalk:
    """What one ``outbox_ready`` walk saw: the accounts it walked, in walk order, and which of
    them have due work a claim may take."""

    walked: list[str]
    ready: list[str]
    cut_short: bool
    """It stopped at its step or ready budget: accounts past the last walked were not seen."""
    accounts: dict[str, tuple[AccountRow, int] | None] | None = None
    """With ``with_accounts``: each ready account's ``invoice_sync.account`` row and version
    (as ``account_rows_named`` gives them), None for one not in the table; else None."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordSummary:
    applied: frozenset[int]
    synced: int
    dead: int
    rescheduled: int


class WorkedAccounts(NamedTuple):
    """The accounts a replica works, as the queries that count its rows take them
    (``outbox_unfinished``, ``metrics_outbox``): its config file's ``names`` and, with
    ``database``, every enabled account of ``invoice_sync.account`` (which it does not hold:
    the query looks), less those in ``skip`` (found unusable: their rows wait)."""

    names: Sequence[str]
    database: bool = False
    skip: Sequence[str] = ()

    def query_args(self) -> tuple[list[str], bool, list[str]]:
        return list(self.names), self.database, list(self.skip)


class Outbox:
    """Claims, records and rescues outbox rows for one worker identity."""

    def __init__(self, pool: asyncpg.Pool, *, worker_id: str) -> None:
        self._pool = pool
        self.worker_id = worker_id
        self._q = queries()

    async def outbox_claim(
        self, wants: Mapping[str, ClaimRequest], *, lease: float, probe_cooldown: float
    ) -> ClaimResult:
        """Lease up to ``wants[account].rows`` due rows of each account: fewer if fewer are due or
        the account's shared token bucket holds fewer tokens (one token per row leased)."""
        accounts = list(wants)
        requests = [wants[a] for a in accounts]
        rows = await database.run(
            lambda: self._pool.fetch(
                self._q["outbox_claim"],
                self.worker_id,
                accounts,
                [r.rows for r in requests],
                lease,
                probe_cooldown,
                [r.rate for r in requests],
                [r.burst for r in requests],
                MAX_PAYLOAD_BYTES,
            )
        )
        claimed, dead, finished, waits = [], [], [], {}
        for row in rows:
            if row["id"] is None:
                waits[row["account"]] = row["token_wait"]
            elif row["finished_as"] is not None:
                finished.append(
                    FinishedAtClaim(
                        id=row["id"],
                        account=row["account"],
                        idempotency_key=row["idempotency_key"],
                        state=row["finished_as"],
                    )
                )
            elif row["dead_error"] is not None:
                dead.append(
                    DeadAtClaim(
                        id=row["id"],
                        account=row["account"],
                        idempotency_key=row["idempotency_key"],
                        error=row["dead_error"],
                    )
                )
            else:
                claimed.append(_claimed(row))
        return ClaimResult(rows=claimed, token_waits=waits, dead=dead, finished=finished)

    async def outbox_ready(
        self, *, after: str, steps: int, wanted: int, with_accounts: bool = False
    ) -> ReadyWalk:
        """Accounts with due rows, not paused or throttled, walking account names from
        ``after`` (round once) for at most ``steps`` accounts or until ``wanted`` are found;
        ``with_accounts``: with the ready ones' rows of ``invoice_sync.account`` (in the same
        statement: a claim that opens accounts saves the round trip of reading them)."""
        rows = await database.run(
            lambda: self._pool.fetch(self._q["outbox_ready"], after, steps, wanted, with_accounts)
        )
        walked = [row["account"] for row in rows]
        ready = [row["account"] for row in rows if row["ready"]]
        accounts = None
        if with_accounts:
            accounts = {
                row["account"]: None
                if row["name"] is None
                else (AccountRow.from_row(row), row["version"])
                for row in rows
                if row["ready"]
            }
        return ReadyWalk(
            walked=walked,
            ready=ready,
            cut_short=len(walked) >= steps or len(ready) >= wanted,
            accounts=accounts,
        )

    async def outbox_record(
        self,
        resolutions: Sequence[Resolution],
        *,
        attempts: Sequence[AttemptFacts] = (),
        account_actions: Sequence[AccountAction] = (),
        resume: Sequence[str] = (),
    ) -> RecordSummary:
        """Apply outcomes, and the account pauses, throttles and resumes they caused, atomically.

        ``attempts`` (one per resolution, in the same order; the engine always gives them) are
        written to the attempt history in the same statement, for the outcomes applied."""
        if attempts:
            records = [
                r.as_record() | a.as_record() for r, a in zip(resolutions, attempts, strict=True)
            ]
        else:
            records = [r.as_record() for r in resolutions]
        body = records_json(records)
        if not account_actions and not resume:
            # One statement is atomic on its own: no BEGIN and COMMIT round trips around it
            # (most flushes, which carry outcomes and no account change).
            row = await database.run(
                lambda: self._pool.fetchrow(self._q["outbox_record"], self.worker_id, body)
            )
        else:
            async with database.transaction(self._pool) as conn:
                row = await conn.fetchrow(self._q["outbox_record"], self.worker_id, body)
                if account_actions:
                    actions = records_json([asdict(a) for a in account_actions])
                    await conn.execute(self._q["account_apply"], actions)
                for account in resume:
                    await conn.execute(self._q["account_resume"], account)
        return RecordSummary(
            applied=frozenset(row["applied"]),
            synced=row["synced"],
            dead=row["dead"],
            rescheduled=row["rescheduled"],
        )

    async def outbox_rescue(self, limit: int = 1000) -> list[int]:
        """Return rows with expired leases to pending; their ids."""
        rows = await database.run(lambda: self._pool.fetch(self._q["outbox_rescue"], limit))
        return [row["id"] for row in rows]

    async def attempt_prune(self, older_than: float, limit: int) -> int:
        """Delete up to ``limit`` attempt rows older than ``older_than`` seconds, except synced
        and dead_letter ones; how many went. (The attempt rows are written by outbox_record.)"""
        deleted: int = await database.run(
            lambda: self._pool.fetchval(self._q["attempt_prune"], older_than, limit)
        )
        return deleted

    async def outbox_unfinished(self, worked: WorkedAccounts) -> tuple[int, int]:
        """(rows still to process, rows held by paused accounts) of the ``worked`` accounts."""
        row = await database.run(
            lambda: self._pool.fetchrow(self._q["outbox_unfinished"], *worked.query_args())
        )
        return row["unfinished"], row["held_by_paused"]

    async def enqueue_many(self, rows: Sequence[EnqueueRow]) -> int:
        """Bulk-load (account, key, payload JSON, available_at, traceparent) rows as one chunk;
        return how many were new (repeated keys are skipped)."""
        return await self.enqueue_staged(staged(rows))

    async def enqueue_staged(self, chunk: Staged) -> int:
        """Bulk-load a chunk in one transaction: one COPY into a staging table, one INSERT from
        it; return how many rows were new (keys repeated, queued, synced or cancelled are
        skipped)."""
        async with database.transaction(self._pool) as conn:
            await conn.execute(self._q["enqueue_staging_create"])
            await conn.execute(self._q["enqueue_bulk_mode"])
            await conn.execute(self._q["enqueue_without_jit"])
            # A memoryview: asyncpg would take bytes for a file name.
            await conn.copy_to_table(
                "enqueue_staging",
                source=memoryview(chunk.data),
                columns=list(STAGING_COLUMNS),
                format="binary",
            )
            inserted = None if chunk.repeats_a_key else await self._insert_fresh(conn)
            if inserted is None:
                inserted = int(await conn.fetchval(self._q["enqueue_from_staging"]))
            inserted -= int(await conn.fetchval(self._q["enqueue_drop_finished"]))
        return inserted

    async def _insert_fresh(self, conn: asyncpg.Connection) -> int | None:
        """``enqueue_fresh_from_staging`` in a savepoint: how many rows went in, or None (and
        nothing written) when a staged key is in the outbox already."""
        try:
            async with conn.transaction():
                status: str = await conn.execute(self._q["enqueue_fresh_from_staging"])
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "outbox_account_key":
                raise
            return None
        return int(status.rsplit(" ", 1)[1])


def records_json(records: Sequence[Mapping[str, Any]]) -> str:
    """A flush's records as the JSON text ``outbox_record`` reads: with orjson, in a tenth of
    the json module's time (it was the largest part of a flush's Python, a few microseconds
    an invoice), or with the json module for what orjson refuses (an integer past 64 bits, a
    key that is not a string). A datetime comes out in ISO form either way (orjson's with a
    ``T``), which ``timestamptz`` reads alike; a NaN as null, where the json module's ``NaN``
    is not JSON to PostgreSQL.

    A string PostgreSQL cannot hold (a NUL, or a lone surrogate: what a provider's ``\\u0000``
    or ``\\ud800`` decodes to) has each such character replaced by U+FFFD (``storable``).
    Written as it came, it failed the whole statement, so one provider's answer would have
    kept every account's outcomes in that flush, and in each flush after, from being written.

    A record nested too deep to be walked (``RecursionError``: the HTTP seam keeps answers
    shallower, this is the second line) is a value the database cannot be given:
    ``database.StoreRefusedError``, so that the flusher writes the batch row by row, that row without
    the provider's answer, rather than fail every flush with it."""
    try:
        text = orjson.dumps(records, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError is one: a huge integer, a lone surrogate, depth
        text = None
    if text is not None and "\\u0000" not in text:
        return text
    try:
        cleaned = storable(records)
        try:
            return orjson.dumps(cleaned, default=str).decode()
        except TypeError:
            return json.dumps(cleaned, default=str)
    except RecursionError:
        raise database.StoreRefusedError(
            "an outcome nests too deep to be written", brief="an outcome nested too deep to write"
        ) from None


# What PostgreSQL's text and jsonb refuse: NUL, and surrogates (json.loads joins an escaped
# pair into one character, so a surrogate left in a decoded answer is a lone one).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with NUL and lone surrogates replaced by U+FFFD in every string, keys too,
    and a NaN or infinity (a provider's ``1e400``) as null, as orjson writes them: the json
    module would write ``Infinity``, which is not JSON to PostgreSQL."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def _claimed(row: Mapping[str, Any]) -> Claimed:
    """A claimed row as ``outbox_claim`` returns it (its column names are the store's)."""
    return Claimed(
        id=row["id"],
        account=row["account"],
        idempotency_key=row["idempotency_key"],
        payload=row["payload"],
        attempt=row["attempts"],
        claim=row["claims"],
        first_attempt_at=row["first_attempt_at"],
        created_at=row["created_at"],
        prior_unknown=row["prior_unknown"],
        probe=row["probe"],
        traceparent=row["traceparent"],
    )
