"""A running engine follows ``invoice_sync.account`` without holding it: an added account is
claimed once it has a row, a changed secret is used from the next attempt, a disabled or
removed account is no longer claimed, each within 2 s; an account with no rows is never read
(real PostgreSQL and LISTEN, scripted provider recording the token of each call)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from structlog.testing import capture_logs

from tests.factories import enqueue
from tests.fakes import ScriptedProvider, fast_settings, runtime
from worker.engine.account_reload import AccountReloader
from worker.engine.database_accounts import DatabaseLoader
from worker.engine.fleet import Fleet, Loaded, Loader, TableChange
from worker.engine.loop import Engine
from worker.engine.metrics import Metrics
from worker.engine.runtimes import AccountRuntime, CheckedAccount
from worker.outcome import Outcome
from worker.providers.base import Attempt
from worker.sealed import Keyring, decode_key, new_key
from worker.store.account_rows import (
    AccountRow,
    AccountWriter,
    ReadAccounts,
    account_fingerprint,
    account_generation,
)
from worker.store.outbox import Outbox

SANDBOX = "http://127.0.0.1:9"
# Every change must reach the engine within this long (the notification, not the poll).
WITHIN = 2.0


class TokenOpener:
    """Builds scripted runtimes whose every call records (account, token); notes closes."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self._delay = delay

    def __call__(self, name: str, checked: CheckedAccount) -> AccountRuntime:
        token = checked.settings.resolve_token()
        secret = "" if token is None else token.get_secret_value()
        closed = self.closed

        calls = self.calls

        class Recording(ScriptedProvider):
            async def create_invoice(self, attempt: Attempt) -> Outcome:
                calls.append((name, secret))  # as the call starts
                return await super().create_invoice(attempt)

            async def aclose(self) -> None:
                closed.append(name)

        provider = Recording(delay=self._delay)
        return runtime(provider, name=name, concurrency=checked.settings.concurrency)


def sealed_table(pool: asyncpg.Pool) -> tuple[str, Keyring, AccountWriter]:
    """What each test here starts from: a fresh secret key, its keyring, and a writer for
    ``invoice_sync.account``."""
    key = new_key()
    return key, Keyring(decode_key(key, "secret_key")), AccountWriter(pool, "ops@host")


def account_row(name: str, ring: Keyring, token: str, *, enabled: bool = True) -> AccountRow:
    return AccountRow(
        name=name,
        provider="billclap",
        options={"base_url": SANDBOX},
        rate_limit="1000/second",
        concurrency=2,
        enabled=enabled,
        secret=ring.seal(name, {"token": token}),
    )


async def eventually(check: Callable[[], bool], what: str) -> float:
    """Seconds until ``check()`` holds; fails past ``WITHIN``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < WITHIN, f"{what}: not within {WITHIN} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def status(pool: asyncpg.Pool, row_id: int) -> str:
    if await pool.fetchval("SELECT 1 FROM invoice_sync.synced WHERE outbox_id = $1", row_id):
        return "synced"
    pending = await pool.fetchval("SELECT 1 FROM invoice_sync.outbox WHERE id = $1", row_id)
    return "pending" if pending else "gone"


@asynccontextmanager
async def running(
    pool: asyncpg.Pool,
    dsn: str,
    key: str,
    opener: TokenOpener,
    metrics: Metrics,
    *,
    poll: float = 60.0,  # past the test: only a notification can reload in time
    loader: Loader | None = None,
) -> AsyncIterator[Fleet]:
    fleet = Fleet(
        {},
        opener=opener,
        idle_timeout=300,
        max_open=100,
        loader=loader or DatabaseLoader(pool, Keyring(decode_key(key, "secret_key"))),
    )
    engine = Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes=fleet,
        # A slow poll: the notifications (new rows, a reload) are what wake it.
        settings=fast_settings(poll_interval=5.0),
        listen_dsn=dsn,
        rand=lambda: 1.0,
        metrics=metrics,
    )
    reloader = AccountReloader(
        file_accounts=[],
        pool=pool,
        listen_dsn=dsn,
        apply=engine.replace_accounts,
        known=fleet.known_versions,
        metrics=metrics,
        opened_invalid=fleet.invalid_count,
        poll=poll,
    )
    task = asyncio.create_task(engine.run())
    reloader.start()
    try:
        yield fleet
    finally:
        await reloader.stop()
        engine.stop()
        await asyncio.wait_for(task, 10)


def reloads(events: Sequence[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """The ``accounts.reloaded`` events among ``events`` (which ``capture_logs`` fills as they
    come)."""
    return [e for e in events if e["event"] == "accounts.reloaded"]


async def test_add_change_disable_remove_each_reach_a_running_engine_within_2s(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    opener = TokenOpener()
    taken: dict[str, float] = {}
    async with running(pool, dsn, key, opener, Metrics()) as fleet:
        # Added while running, with a row: claimed, no restart.
        await writer.account_insert(account_row("shop", ring, "shop_token_old_0123"))
        first = await enqueue(pool, "shop", "k1")
        taken["add"] = await eventually(
            lambda: ("shop", "shop_token_old_0123") in opener.calls, "first call"
        )

        # Secret changed: the next attempt uses the new one, the old runtime closes.
        before = fleet.known_versions()["shop"]
        sealed = ring.seal("shop", {"token": "shop_token_new_4567"})
        await writer.account_update("shop", lambda r: dataclasses.replace(r, secret=sealed))
        taken["change"] = await eventually(
            lambda: fleet.known_versions().get("shop") != before, "changed secret"
        )
        second = await enqueue(pool, "shop", "k2")
        await eventually(lambda: ("shop", "shop_token_new_4567") in opener.calls, "new token")
        assert opener.calls == [("shop", "shop_token_old_0123"), ("shop", "shop_token_new_4567")]
        await eventually(lambda: "shop" in opener.closed, "old runtime closed")

        # Disabled: no longer claimed; its row waits.
        await eventually(lambda: "shop" in fleet, "open again")
        await writer.account_update("shop", lambda r: dataclasses.replace(r, enabled=False))
        taken["disable"] = await eventually(lambda: "shop" not in fleet, "disabled account")
        waiting = await enqueue(pool, "shop", "k3")

        # Another added, worked, then removed: no longer in the fleet.
        await writer.account_insert(account_row("brief", ring, "brief_token_0123456"))
        third = await enqueue(pool, "brief", "k1")
        await eventually(lambda: "brief" in fleet, "second account")
        await eventually(lambda: len(opener.calls) == 3, "second account's call")
        await asyncio.sleep(0.2)  # its outcome written: a removal is refused while rows wait
        assert await writer.account_delete("brief", force=False) == (True, 0)
        taken["remove"] = await eventually(lambda: "brief" not in fleet, "removed account")
        await asyncio.sleep(0.5)  # a few claims: the disabled account's row stays unclaimed
    assert [await status(pool, i) for i in (first, second, third, waiting)] == [
        "synced",
        "synced",
        "synced",
        "pending",
    ]
    assert len(opener.calls) == 3
    assert max(taken.values()) < WITHIN, taken


async def test_rows_waiting_for_an_account_not_yet_in_the_table_go_once_it_is_added(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    await writer.account_insert(account_row("shop", ring, "shop_token_0123456"))
    opener = TokenOpener()
    async with running(pool, dsn, key, opener, Metrics()) as fleet:
        early = await enqueue(pool, "late", "k1")
        # Read once and found missing: remembered, so that it is not read at every claim.
        await eventually(lambda: "late" in fleet.known_versions(), "looked up")
        assert "late" not in fleet
        await writer.account_insert(account_row("late", ring, "late_token_0123456"))
        await eventually(lambda: ("late", "late_token_0123456") in opener.calls, "added")
        await asyncio.sleep(0.2)
        assert await status(pool, early) == "synced"


async def test_idle_accounts_are_never_read_at_start_nor_at_a_reload(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    for n in range(30):
        await writer.account_insert(account_row(f"idle-{n:02d}", ring, "idle_token_0123456"))
    await writer.account_insert(account_row("busy", ring, "busy_token_0123456"))
    opener = TokenOpener()
    loader = CountingLoader(pool, key)
    with capture_logs() as events:
        async with running(pool, dsn, key, opener, Metrics(), loader=loader) as fleet:
            await eventually(lambda: len(reloads(events)) == 1, "the first reload")
            assert reloads(events)[0]["accounts"] == 31
            await enqueue(pool, "busy", "k1")
            await eventually(lambda: bool(opener.calls), "the busy account's call")
            # A change to an idle account: the reload rereads only what the replica knows.
            await writer.account_update("idle-07", lambda r: dataclasses.replace(r, concurrency=5))
            await eventually(lambda: len(reloads(events)) == 2, "the second reload")
            assert reloads(events)[1]["reread"] == 1
            assert list(fleet.known_versions()) == ["busy"]
    assert loader.asked == ["busy"]


async def test_a_row_removed_by_hand_with_rows_pending_is_no_longer_claimed(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    opener = TokenOpener()
    async with running(pool, dsn, key, opener, Metrics()) as fleet:
        await writer.account_insert(account_row("shop", ring, "shop_token_0123456"))
        await enqueue(pool, "shop", "k1")
        await eventually(lambda: bool(opener.calls), "first call")
        await eventually(lambda: "shop" in fleet, "open")
        # `accounts remove` refuses while rows wait; by hand, the row goes anyway.
        await pool.execute("DELETE FROM invoice_sync.account WHERE name = 'shop'")
        await eventually(lambda: "shop" not in fleet, "removed account")
        left = await enqueue(pool, "shop", "k2")
        await asyncio.sleep(0.5)
        assert await status(pool, left) == "pending"
    assert len(opener.calls) == 1


async def test_a_call_in_flight_finishes_on_the_runtime_it_started_with(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    opener = TokenOpener(delay=1.0)
    async with running(pool, dsn, key, opener, Metrics()) as fleet:
        await writer.account_insert(account_row("shop", ring, "shop_token_old_0123"))
        row_id = await enqueue(pool, "shop", "slow")
        await eventually(lambda: bool(opener.calls), "call started")
        before = fleet.known_versions()["shop"]
        sealed = ring.seal("shop", {"token": "shop_token_new_4567"})
        await writer.account_update("shop", lambda r: dataclasses.replace(r, secret=sealed))
        await eventually(lambda: fleet.known_versions().get("shop") != before, "changed secret")
        assert opener.closed == []  # the old runtime still has its call in flight
        await asyncio.sleep(1.2)
        assert await status(pool, row_id) == "synced"
        await eventually(lambda: opener.closed == ["shop"], "old runtime closed after")
    assert opener.calls == [("shop", "shop_token_old_0123")]


class CountingLoader:
    """The daemon's loader, noting the names each claim asked it to read."""

    def __init__(self, pool: asyncpg.Pool, key: str) -> None:
        self.asked: list[str] = []
        self._loader = DatabaseLoader(pool, Keyring(decode_key(key, "secret_key")))

    async def __call__(
        self, names: list[str], read: ReadAccounts | None = None
    ) -> dict[str, Loaded]:
        self.asked.extend(names)
        return await self._loader(names, read)


async def test_a_row_no_key_opens_or_with_bad_options_is_skipped_and_the_daemon_runs_on(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    other = Keyring(decode_key(new_key(), "secret_key"))
    opener = TokenOpener()
    metrics = Metrics()
    loader = CountingLoader(pool, key)

    def invalid_gauge() -> float | None:
        return metrics.registry.get_sample_value("invoice_sync_accounts_invalid")

    with capture_logs() as events:
        async with running(pool, dsn, key, opener, metrics, loader=loader) as fleet:
            await writer.account_insert(account_row("foreign", other, "foreign_token_01234"))
            bad = dataclasses.replace(
                account_row("broken", ring, "broken_token_01234"),
                options={"base_url": SANDBOX, "no_such_option": 1},
            )
            await writer.account_insert(bad)
            await writer.account_insert(account_row("good", ring, "good_token_0123456"))
            await eventually(lambda: bool(reloads(events)), "a reload")
            # Not read: a row is what reads an account (and finds it unusable).
            assert invalid_gauge() == 0
            held = [await enqueue(pool, name, "k1") for name in ("foreign", "broken")]
            row_id = await enqueue(pool, "good", "k1")
            await eventually(lambda: bool(opener.calls), "the valid account's call")
            await eventually(lambda: invalid_gauge() == 2, "left out")
            assert ("foreign" in fleet, "broken" in fleet) == (False, False)
            await asyncio.sleep(0.2)
            assert await status(pool, row_id) == "synced"
            # More rows and claims: the unusable accounts are not read again, their rows wait.
            held += [await enqueue(pool, name, "k2") for name in ("foreign", "broken")]
            await enqueue(pool, "good", "k2")
            await eventually(lambda: len(opener.calls) == 2, "the valid account's second call")
            # Another reload: the bad rows, unchanged, stay out and are not named again.
            seen = len(reloads(events))
            await writer.account_insert(account_row("later", ring, "later_token_0123456"))
            await eventually(lambda: len(reloads(events)) > seen, "another reload")
            await asyncio.sleep(0.2)
            assert ("foreign" in fleet, "broken" in fleet) == (False, False)
            assert sorted(loader.asked) == ["broken", "foreign", "good"]
            assert [await status(pool, i) for i in held] == ["pending"] * 4
            # Fixed: taken in again, read at its next claim, its rows sent.
            await writer.account_update(
                "broken", lambda r: dataclasses.replace(r, options={"base_url": SANDBOX})
            )
            await eventually(lambda: ("broken", "broken_token_01234") in opener.calls, "fixed")
            await eventually(lambda: invalid_gauge() == 1, "the gauge counting the fix")
    invalid = sorted(e["account"] for e in events if e["event"] == "account.invalid")
    assert invalid == ["broken", "foreign"]


async def test_a_change_whose_notification_is_lost_is_found_by_the_poll(
    pool: asyncpg.Pool, dsn: str
) -> None:
    key, ring, writer = sealed_table(pool)
    opener = TokenOpener()
    async with running(pool, dsn, key, opener, Metrics(), poll=0.5) as fleet:
        await writer.account_insert(account_row("shop", ring, "shop_token_0123456"))
        await enqueue(pool, "shop", "k1")
        await eventually(lambda: "shop" in fleet, "open")
        # As if the notification were lost: in this session triggers (the NOTIFY's) do not fire.
        quiet = await asyncpg.create_pool(
            dsn, min_size=1, max_size=1, server_settings={"session_replication_role": "replica"}
        )
        try:
            await AccountWriter(quiet, "ops@host").account_update(
                "shop", lambda r: dataclasses.replace(r, enabled=False)
            )
        finally:
            await quiet.close()
        taken = await eventually(lambda: "shop" not in fleet, "the poll's reload")
    assert taken < WITHIN


async def test_the_fingerprint_changes_with_any_row_even_one_changed_by_hand(
    pool: asyncpg.Pool,
) -> None:
    ring = Keyring(decode_key(new_key(), "secret_key"))
    empty = await account_fingerprint(pool)
    assert empty.enabled == 0
    await AccountWriter(pool, "ops@host").account_insert(
        account_row("a", ring, "a_token_0123456789")
    )
    one = await account_fingerprint(pool)
    assert one == await account_fingerprint(pool)  # stable while nothing changes
    # By hand: updated_at left alone.
    await pool.execute("UPDATE invoice_sync.account SET concurrency = 7 WHERE name = 'a'")
    changed = await account_fingerprint(pool)
    await pool.execute("DELETE FROM invoice_sync.account")
    gone = await account_fingerprint(pool)
    await pool.execute("TRUNCATE invoice_sync.account")
    truncated = await account_fingerprint(pool)
    assert len({empty.value, one.value, changed.value, gone.value, truncated.value}) == 5
    assert (one.enabled, changed.enabled, gone.enabled) == (1, 1, 0)
    # The poll's read is the fingerprint's value, alone.
    assert await account_generation(pool) == truncated.value


async def test_a_poll_while_nothing_changed_reads_one_row_not_the_table(
    pool: asyncpg.Pool, dsn: str
) -> None:
    """The poll used to hash every row of the table to see whether any changed (0.4 s of the
    server's CPU at 100,000 accounts, on every replica at every poll); now it reads the change
    counter's row (migration 016). Every statement an unchanged reload runs is explained: none
    may read the account table."""
    ring = Keyring(decode_key(new_key(), "secret_key"))
    writer = AccountWriter(pool, "ops@host")
    for name in ("a", "b", "c"):
        await writer.account_insert(account_row(name, ring, f"{name}_token_0123456789"))
    statements: list[str] = []

    class Recording:
        """The pool, remembering each statement run through it."""

        def __getattr__(self, method: str) -> Any:
            run = getattr(pool, method)

            async def call(query: str, *args: Any, **kwargs: Any) -> Any:
                statements.append(query)
                return await run(query, *args, **kwargs)

            return call

    applied: list[TableChange] = []
    reloader = AccountReloader(
        file_accounts=[],
        pool=Recording(),
        listen_dsn=dsn,
        apply=applied.append,
        known=dict,
        fingerprint=await account_fingerprint(pool),
    )
    await reloader.reload()
    assert statements
    assert not applied
    for query in statements:
        plan = "\n".join(row[0] for row in await pool.fetch("EXPLAIN " + query))
        assert not re.search(r" on account( |$)", plan, re.M), plan
    # And a change is still seen: the counter moved, so the table is counted.
    await pool.execute("UPDATE invoice_sync.account SET enabled = false WHERE name = 'c'")
    await reloader.reload()
    assert [change.enabled for change in applied] == [2]
