"""The connector: connections and "run this query", with asyncpg's errors translated here.

Nothing above this module imports asyncpg's exceptions; the store and the CLI see
``StoreError``. Nothing here knows what an invoice is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import asyncpg

from worker.errors import StoreError

T = TypeVar("T")

Pool: TypeAlias = asyncpg.Pool
"""A pool of connections, for the layers above to hold and hand back to the store: they name
this type, never asyncpg's."""

Row: TypeAlias = Mapping[str, Any]
"""A row of a query's result, read by column name."""

# Errors that mean "the database is not there right now", as opposed to a statement it refused.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
)
# Errors that roll back only this transaction, for a clash with a concurrent one (SQLSTATE class
# 40: deadlock detected, serialization failure): nothing was written, and running it again is
# the cure. Replicas claiming and flushing side by side can deadlock on account rows.
CONFLICT = (asyncpg.TransactionRollbackError,)
# Errors that refuse a value of the statement (SQLSTATE class 22, data exception; 23, integrity
# constraint violation; 54, program limit exceeded, such as an index entry too large): the same
# statement with the same values is refused again, however often it is tried.
REFUSED = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)


class StoreRefusedError(StoreError):
    """The database refused a value of the statement (``REFUSED``). ``brief`` says what refused
    it (the SQLSTATE, and the constraint, table and column it names) without the message's
    text, which may quote the refused value."""

    def __init__(self, message: str, *, brief: str) -> None:
        super().__init__(message)
        self.brief = brief


class StoreUnavailableError(StoreError):
    """The database could not be reached, or rolled the statement back for a conflict with
    another transaction (a deadlock, a serialization failure); the operation may be retried."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    reset_sessions: bool = True,
    generic_plans: bool = False,
) -> asyncpg.Pool:
    """A pool; ``StoreError`` with a readable reason when the database cannot be reached.

    ``reset_sessions=False`` is for a pool whose users never leave session state behind (no
    ``SET`` outside a transaction, no session advisory lock, no ``LISTEN``, no cursor ``WITH
    HOLD``), as the worker's named queries do not: each connection handed back then skips
    asyncpg's reset statement (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``),
    a round trip per statement run on the pool. A transaction left open is still rolled back.

    ``generic_plans=True`` makes each connection plan a prepared statement once and reuse the
    plan (``plan_cache_mode = force_generic_plan``), for a pool that runs the same few
    statements at speed, whose plans do not depend on their parameters' values: PostgreSQL's
    default plans the claim again at every run (its generic plan's estimate is the higher),
    half a millisecond of the server's CPU per claim, a fifth of the whole claim's time.
    A ``SET`` when each connection opens (not a startup parameter, which PgBouncer refuses),
    so only for a pool that does not reset its sessions (``RESET ALL`` would undo it).
    """
    if generic_plans and reset_sessions:
        raise ValueError("generic_plans needs reset_sessions=False: RESET ALL would undo it")
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=60,
            timeout=10,
            reset=None if reset_sessions else _keep_session,
            init=_plan_once if generic_plans else None,
        )
    except UNAVAILABLE as exc:
        raise StoreUnavailableError(f"cannot connect to the database: {describe(exc)}") from exc
    except asyncpg.PostgresError as exc:
        # The server's refusal of the start-up (an unknown database, a login refused, a packet
        # it cannot read): its words, which never hold the URL's password.
        raise StoreError(f"cannot connect to the database: {exc}") from exc
    except ValueError as exc:
        raise StoreError(f"database_url is not a valid PostgreSQL URL: {exc}") from exc
    assert pool is not None
    return pool


async def _plan_once(conn: asyncpg.Connection) -> None:
    await conn.execute("SET plan_cache_mode = force_generic_plan")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pool's reset that sends nothing: asyncpg has already rolled back an open transaction
    and dropped the connection's listeners before it calls this."""


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection outside the pool (LISTEN, migrations under an advisory lock)."""
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except UNAVAILABLE as exc:
        raise StoreUnavailableError(f"cannot connect to the database: {describe(exc)}") from exc
    except (asyncpg.PostgresError, ValueError) as exc:
        raise StoreError(f"cannot connect to the database: {exc}") from exc


async def run(action: Callable[[], Awaitable[T]]) -> T:
    """Run a database action, translating asyncpg's errors into ours."""
    try:
        return await action()
    except asyncpg.UndefinedTableError as exc:
        raise StoreError(f"{exc} (has `invoice-sync migrate` been run?)") from exc
    except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
        raise translated(exc) from exc


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A connection in a transaction, errors translated."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
        raise translated(exc) from exc


def translated(exc: BaseException) -> StoreError:
    """``exc`` (one of ``UNAVAILABLE``, or an error of PostgreSQL's) as ours: away or in
    conflict (``StoreUnavailableError``: try again), a refused value (``StoreRefusedError``,
    whose brief names the SQLSTATE, constraint, table and column, never the value), or any
    other refusal of the statement."""
    if isinstance(exc, UNAVAILABLE):
        return StoreUnavailableError(f"database unavailable: {describe(exc)}")
    if isinstance(exc, CONFLICT):
        return StoreUnavailableError(f"database conflict, rolled back: {exc}")
    if isinstance(exc, REFUSED):
        named = [
            f"{what} {name}"
            for what, name in (
                ("constraint", exc.constraint_name),
                ("table", exc.table_name),
                ("column", exc.column_name),
            )
            if name
        ]
        brief = f"SQLSTATE {exc.sqlstate}" + (f", {', '.join(named)}" if named else "")
        return StoreRefusedError(f"database error: {exc}", brief=brief)
    return StoreError(f"database error: {exc}")


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
