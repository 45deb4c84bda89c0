"""Database accounts in the fleet: unknown until a claim's walk names them, read then in one go
(only the new ones), those not to run remembered (bounded) until a reload sees their row
change, and a reload retiring only what changed (no I/O: a scripted loader stands for the
database)."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tests.fakes import ScriptedProvider, runtime
from worker.config.accounts import AccountSettings
from worker.engine.fleet import Fleet, Loaded, TableChange
from worker.engine.runtimes import AccountRuntime, CheckedAccount, check_account
from worker.errors import ConfigError
from worker.store.account_rows import ReadAccounts


def checked(name: str, concurrency: int = 2) -> CheckedAccount:
    settings = AccountSettings(
        provider="billclap",
        base_url="http://127.0.0.1:9",
        token="t" * 12,
        concurrency=concurrency,
        rate_limit="10/second",
    )
    return check_account(name, settings)


class Loader:
    def __init__(self, answers: dict[str, Loaded]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    async def __call__(
        self, names: list[str], read: ReadAccounts | None = None
    ) -> dict[str, Loaded]:
        self.asked.append(names)
        return {n: self.answers[n] for n in names if n in self.answers}


def opener(name: str, account: CheckedAccount) -> AccountRuntime:
    return runtime(ScriptedProvider(), name=name, concurrency=account.settings.concurrency)


def fleet_of(
    loader: Loader, *, table_size: int = 100, max_open: int = 10, **file: CheckedAccount
) -> Fleet:
    return Fleet(
        file,
        opener=opener,
        idle_timeout=60,
        max_open=max_open,
        loader=loader,
        table_size=table_size,
    )


async def test_a_database_account_is_read_when_a_claim_first_names_it_new_ones_together() -> None:
    loader = Loader({"a": Loaded(1, checked("a")), "b": Loaded(1, checked("b", concurrency=3))})
    fleet = fleet_of(loader)
    # Nothing read at start: the fleet holds no name of the table's.
    assert ("a" in fleet, fleet.known_versions(), loader.asked) == (False, {}, [])
    with pytest.raises(ConfigError, match="not opened"):
        fleet.runtime("a")
    await fleet.prepare(["a", "b"])
    assert loader.asked == [["a", "b"]]
    # The claim's needs come from the account as read, before it is opened.
    assert ("a" in fleet, fleet.room("b"), fleet.provider_name("a")) == (True, 6, "billclap")
    assert fleet.claim_request("a", 2).rate == 10.0
    fleet.runtime("a")
    fleet.runtime("b")
    await fleet.prepare(["a", "b"])
    assert loader.asked == [["a", "b"]]  # open already: not read again
    assert fleet.known_versions() == {"a": 1, "b": 1}


async def test_the_config_files_accounts_are_never_read_nor_anything_without_a_table() -> None:
    loader = Loader({})
    fleet = fleet_of(loader, table_size=0, shop=checked("shop"))
    await fleet.prepare(["shop", "stranger"])
    assert loader.asked == []
    assert ("shop" in fleet, "stranger" in fleet) == (True, False)
    fleet.replace(TableChange({}, enabled=1))  # a row added: a reload says so
    await fleet.prepare(["shop", "stranger"])
    assert loader.asked == [["stranger"]]


async def test_names_not_to_run_are_remembered_until_their_row_changes() -> None:
    loader = Loader(
        {"bad": Loaded(1, "account bad: cannot decrypt its secret"), "ok": Loaded(1, checked("ok"))}
    )
    fleet = fleet_of(loader)
    with capture_logs() as logs:
        await fleet.prepare(["bad", "ok", "gone"])
        assert ("bad" in fleet, "gone" in fleet, "ok" in fleet) == (False, False, True)
        await fleet.prepare(["bad", "gone"])
    assert loader.asked == [["bad", "ok", "gone"]]  # left out: not read at every claim
    assert [(e["event"], e["account"]) for e in logs] == [("account.invalid", "bad")]
    assert (fleet.invalid_count(), fleet.unusable()) == (1, ["bad"])
    # A reload that finds their rows as they were: they stay out.
    fleet.replace(TableChange({"bad": 1, "gone": None}, enabled=2))
    await fleet.prepare(["bad", "gone"])
    assert len(loader.asked) == 1
    # Changed (fixed, added): forgotten, read again at their next claim.
    fleet.replace(TableChange({"bad": 2, "gone": 7}, enabled=3))
    assert (fleet.invalid_count(), fleet.known_versions()) == (0, {})
    loader.answers["bad"] = Loaded(2, checked("bad"))
    await fleet.prepare(["bad", "gone"])
    assert loader.asked[1:] == [["bad", "gone"]]
    assert fleet.runtime("bad").name == "bad"


async def test_the_names_remembered_are_bounded_the_least_recently_named_go_first() -> None:
    loader = Loader({})
    fleet = fleet_of(loader, max_open=2)
    await fleet.prepare(["n1", "n2"])
    await fleet.prepare(["n1", "n3"])  # n1 named again: n2 is the one to go
    assert sorted(fleet.known_versions()) == ["n1", "n3"]
    await fleet.prepare(["n2"])
    assert loader.asked == [["n1", "n2"], ["n3"], ["n2"]]


async def test_a_reload_retires_the_runtimes_whose_row_changed_or_went_and_no_other() -> None:
    loader = Loader({n: Loaded(1, checked(n)) for n in ("same", "changed", "off", "later")})
    fleet = fleet_of(loader, shop=checked("shop"))
    await fleet.prepare(["same", "changed", "off", "shop"])
    opened = {n: fleet.runtime(n) for n in ("same", "changed", "off", "shop")}
    # Read before "later" was opened: a reload knows nothing of it, and leaves it be.
    change = TableChange({"same": 1, "changed": 2, "off": None}, enabled=3)
    await fleet.prepare(["later"])
    fleet.runtime("later")
    retired = fleet.replace(change)
    assert retired == [opened["changed"], opened["off"]]
    assert [n for n in ("same", "changed", "off", "shop", "later") if n in fleet] == [
        "same", "shop", "later",
    ]  # fmt: skip
    loader.answers["changed"] = Loaded(2, checked("changed"))
    await fleet.prepare(["changed"])
    assert fleet.runtime("changed") is not opened["changed"]


async def test_a_reload_while_a_claim_reads_accounts_rereads_those_too() -> None:
    release = asyncio.Event()

    class Slow(Loader):
        async def __call__(
            self, names: list[str], read: ReadAccounts | None = None
        ) -> dict[str, Loaded]:
            await release.wait()
            return await super().__call__(names, read)

    fleet = fleet_of(Slow({"new": Loaded(1, checked("new"))}))
    reading = asyncio.create_task(fleet.prepare(["new"]))
    await asyncio.sleep(0)
    # A change committed after the claim's read began is missed by it: the reload rereads it.
    assert fleet.known_versions() == {"new": None}
    release.set()
    await reading
    assert fleet.known_versions() == {"new": 1}


async def test_the_fleet_knows_every_account_only_once_each_enabled_one_is_open() -> None:
    loader = Loader({"db": Loaded(1, checked("db"))})
    fleet = fleet_of(loader, table_size=1, shop=checked("shop"))
    assert fleet.every_account(8) is None  # the table's account is not known yet
    await fleet.prepare(["db"])
    fleet.runtime("db")
    assert fleet.every_account(8) == ["db", "shop"]
    assert fleet.every_account(1) is None
    fleet.replace(TableChange({"db": 1}, enabled=2))  # another row enabled since
    assert fleet.every_account(8) is None
