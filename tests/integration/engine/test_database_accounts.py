"""Accounts held in the database, loaded as `check-config` loads them and read as a replica
reads them (only the config file's names and one secret per key at start, an account when a
claim names it): secrets opened, bad rows left out, names shared with the config refused,
changes notified."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.factories import enqueue
from worker.config import Settings
from worker.config.accounts import AccountSettings
from worker.engine.database_accounts import (
    DatabaseLoader,
    check_config_names,
    check_keys,
    load_accounts,
    merge_accounts,
)
from worker.engine.runtimes import CheckedAccount
from worker.errors import ConfigError
from worker.sealed import Keyring, Sealed, SealError, decode_key, new_key
from worker.store.account_rows import (
    ACCOUNT_CHANNEL,
    AccountRow,
    AccountWriter,
    account_fingerprint,
    account_rows,
    account_versions,
)
from worker.store.outbox import Outbox

TOKEN = "bc_live_token_0123456789"
SANDBOX = "http://127.0.0.1:9"


def keyring(key: str | None = None) -> Keyring:
    return Keyring(decode_key(key or new_key(), "secret_key"))


def row(name: str, ring: Keyring, **options: object) -> AccountRow:
    return AccountRow(
        name=name,
        provider="billclap",
        options={"base_url": SANDBOX, **options},
        rate_limit="600/minute",
        concurrency=3,
        enabled=True,
        secret=ring.seal(name, {"token": TOKEN}),
    )


async def test_rows_load_with_their_secret_opened_and_their_settings_checked(
    pool: asyncpg.Pool,
) -> None:
    ring = keyring()
    await AccountWriter(pool, "ops@host").account_insert(row("shop", ring))
    [stored] = await account_rows(pool)
    loaded = load_accounts([stored], ring)
    account = loaded.accounts["shop"]
    assert account.resolve_token() == SecretStr(TOKEN)
    assert (account.provider, account.concurrency, str(account.rate_limit)) == (
        "billclap",
        3,
        str(
            AccountSettings(
                provider="billclap", base_url=SANDBOX, rate_limit="600/minute"
            ).rate_limit
        ),
    )
    assert loaded.secrets == [TOKEN]


async def test_what_a_dump_of_the_table_shows_holds_no_secret(pool: asyncpg.Pool) -> None:
    await AccountWriter(pool, "ops@host").account_insert(row("shop", keyring()))
    # COPY ... TO STDOUT is what pg_dump reads a table's data with.
    dumped = bytearray()
    async with pool.acquire() as conn:
        await conn.copy_from_table(
            "account", schema_name="invoice_sync", output=lambda b: _append(dumped, b)
        )
    assert b"shop" in dumped
    assert TOKEN.encode() not in dumped
    assert TOKEN.encode().hex().encode() not in dumped


async def _append(into: bytearray, data: bytes) -> None:
    into.extend(data)


async def test_a_row_with_invalid_options_is_left_out_and_named_the_others_run(
    pool: asyncpg.Pool,
) -> None:
    ring = keyring()
    writer = AccountWriter(pool, "ops@host")
    await writer.account_insert(row("good", ring))
    await writer.account_insert(row("typo", ring, bank_idd=7))  # as if written by hand
    with capture_logs() as logs:
        loaded = load_accounts(await account_rows(pool), ring)
    assert set(loaded.accounts) == {"good"}
    assert set(loaded.invalid) == {"typo"}
    [event] = [e for e in logs if e["event"] == "account.invalid"]
    assert event["account"] == "typo"
    assert "bank_idd" in event["error"]
    assert TOKEN not in str(logs)


async def test_a_wrong_key_or_none_stops_the_load_naming_the_account(pool: asyncpg.Pool) -> None:
    await AccountWriter(pool, "ops@host").account_insert(row("shop", keyring()))
    rows = await account_rows(pool)
    for ring in (keyring(), Keyring(None)):
        with pytest.raises(SealError, match=r"^account shop: cannot decrypt its secret"):
            load_accounts(rows, ring)


async def test_a_name_in_the_config_and_the_database_is_an_error_naming_it(
    pool: asyncpg.Pool,
) -> None:
    ring = keyring()
    await AccountWriter(pool, "ops@host").account_insert(row("shop", ring))
    config = Settings.model_validate(
        {"accounts": {"shop": {"provider": "billclap", "base_url": SANDBOX, "token": "t" * 12}}}
    )
    with pytest.raises(ConfigError, match=r"^accounts\.shop: defined both in the config"):
        merge_accounts(config, load_accounts(await account_rows(pool), ring))
    other = Settings.model_validate(
        {"accounts": {"outlet": {"provider": "billclap", "base_url": SANDBOX, "token": "t" * 12}}}
    )
    merged = merge_accounts(other, load_accounts(await account_rows(pool), ring))
    assert set(merged.accounts) == {"outlet", "shop"}


async def test_each_change_to_the_table_is_notified_on_the_channel(
    dsn: str, pool: asyncpg.Pool
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    try:
        await listener.add_listener(ACCOUNT_CHANNEL, lambda *a: heard.put_nowait(a[3]))
        ring = keyring()
        writer = AccountWriter(pool, "ops@host")
        await writer.account_insert(row("shop", ring))
        await writer.account_update("shop", lambda r: r)
        assert await writer.account_delete("shop", force=False) == (True, 0)
        for _ in range(3):
            assert await asyncio.wait_for(heard.get(), 5) == ""
    finally:
        await listener.close()


async def test_replicas_holding_both_keys_load_every_account_while_rotate_key_runs(
    pool: asyncpg.Pool,
) -> None:
    old, new = new_key(), new_key()
    writer = AccountWriter(pool, "ops@host")
    before = keyring(old)
    for n in range(120):
        await writer.account_insert(row(f"shop-{n:03d}", before))
    rotating = Keyring(decode_key(new, "secret_key"), [decode_key(old, "previous")])
    loads: list[int] = []
    mixed = 0  # loads that found some secrets re-sealed and some not: mid-rotation

    async def rotate() -> None:
        def reseal(name: str, sealed: Sealed) -> Sealed:
            return rotating.seal(name, rotating.open(name, sealed))

        while await writer.account_rekey_batch(rotating.current_id or "", 10, reseal):
            await asyncio.sleep(0)  # let the reader in between batches

    async def read() -> None:
        nonlocal mixed
        for _ in range(30):
            rows = await account_rows(pool)
            mixed += len({r.secret.key_id for r in rows if r.secret is not None}) == 2
            loads.append(len(load_accounts(rows, rotating).accounts))
            await asyncio.sleep(0)

    await asyncio.gather(rotate(), read())
    assert loads == [120] * 30
    assert mixed > 0
    ids = {r.secret.key_id for r in await account_rows(pool) if r.secret is not None}
    assert ids == {rotating.current_id}
    # Once rotated, the new key alone opens every secret: the old one may be dropped.
    assert len(load_accounts(await account_rows(pool), keyring(new)).accounts) == 120


async def test_start_up_opens_one_secret_per_key_and_a_claim_finds_a_damaged_row(
    pool: asyncpg.Pool,
) -> None:
    ring = keyring()
    writer = AccountWriter(pool, "ops@host")
    await writer.account_insert(row("a-shop", ring))
    # Another account's ciphertext: under the same key, but sealed for another name.
    moved = dataclasses.replace(row("b-shop", ring), secret=ring.seal("a-shop", {"token": TOKEN}))
    await writer.account_insert(moved)
    await check_keys(pool, ring)  # the sample under the key (a-shop) opens: start-up goes on
    for wrong in (keyring(), Keyring(None)):
        with pytest.raises(SealError, match=r"^account a-shop: cannot decrypt its secret"):
            await check_keys(pool, wrong)
    await writer.account_insert(dataclasses.replace(row("c-shop", ring), enabled=False))
    opened = await DatabaseLoader(pool, ring)(["a-shop", "b-shop", "c-shop", "gone"])
    assert set(opened) == {"a-shop", "b-shop"}  # gone, or disabled: not to run
    good, damaged = opened["a-shop"].account, opened["b-shop"].account
    versions = await account_versions(pool, ["a-shop", "b-shop"])
    assert opened["a-shop"].version == versions["a-shop"].version
    assert isinstance(good, CheckedAccount)
    assert good.settings.resolve_token() == SecretStr(TOKEN)
    assert isinstance(damaged, str)
    assert damaged.startswith("account b-shop: cannot decrypt its secret")


async def test_start_up_reads_the_config_names_and_the_tables_count_not_its_rows(
    pool: asyncpg.Pool,
) -> None:
    ring = keyring()
    writer = AccountWriter(pool, "ops@host")
    for name in ("shop-1", "shop-2"):
        await writer.account_insert(row(name, ring))
    await writer.account_insert(dataclasses.replace(row("off", ring), enabled=False))
    fingerprint = await account_fingerprint(pool)
    assert fingerprint.enabled == 2
    versions = await account_versions(pool, ["shop-1", "off", "nowhere"])
    assert (set(versions), versions["off"].enabled) == ({"shop-1", "off"}, False)
    await check_config_names(pool, ["outlet", "config-shop"])  # none in the table: fine
    # A disabled row's name is taken too.
    with pytest.raises(ConfigError, match=r"^accounts\.off: defined both in the config"):
        await check_config_names(pool, ["outlet", "off"])
    # Any change to a row changes its version, and the fingerprint.
    await pool.execute("UPDATE invoice_sync.account SET concurrency = 4 WHERE name = 'shop-1'")
    after = await account_versions(pool, ["shop-1", "shop-2"])
    assert after["shop-1"].version != versions["shop-1"].version
    assert await account_fingerprint(pool) != fingerprint


async def test_the_claims_walk_brings_the_rows_the_loader_would_read(pool: asyncpg.Pool) -> None:
    ring = keyring()
    writer = AccountWriter(pool, "ops@host")
    await writer.account_insert(row("a-shop", ring))
    moved = dataclasses.replace(row("b-shop", ring), secret=ring.seal("a-shop", {"token": TOKEN}))
    await writer.account_insert(moved)
    await writer.account_insert(dataclasses.replace(row("c-shop", ring), enabled=False))
    names = ["a-shop", "b-shop", "c-shop", "gone"]
    for name in names:
        await enqueue(pool, name, "k1")
    walk = await Outbox(pool, worker_id="w").outbox_ready(
        after="", steps=10, wanted=10, with_accounts=True
    )
    assert walk.accounts is not None
    assert sorted(walk.accounts) == names
    assert walk.accounts["gone"] is None
    # Read by the walk or by the loader's own query: the same rows, versions, verdicts.
    loader = DatabaseLoader(pool, ring)
    queried, given = await loader(names), await loader(names, walk.accounts)
    assert {n: (x.version, str(x.account)) for n, x in given.items()} == {
        n: (x.version, str(x.account)) for n, x in queried.items()
    }
    assert set(given) == {"a-shop", "b-shop"}
    # Not asked for: the walk leaves the table alone.
    plain = await Outbox(pool, worker_id="w").outbox_ready(after="", steps=10, wanted=10)
    assert plain.accounts is None


async def test_the_loader_queries_when_the_walk_lacks_a_name(pool: asyncpg.Pool) -> None:
    ring = keyring()
    await AccountWriter(pool, "ops@host").account_insert(row("a-shop", ring))
    opened = await DatabaseLoader(pool, ring)(["a-shop"], {})
    assert set(opened) == {"a-shop"}
