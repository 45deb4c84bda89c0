"""Database accounts in the fleet: listed until a claim is about to lease their rows, opened
then in one go, and one found unusable left out until its row changes (no I/O: a scripted
loader stands for the database)."""

from __future__ import annotations

import pytest

from tests.fakes import ScriptedProvider, runtime
from worker.config.accounts import AccountSettings
from worker.durations import parse_rate
from worker.engine.fleet import Fleet, Listed
from worker.engine.runtimes import AccountRuntime, CheckedAccount, check_account
from worker.errors import ConfigError


def listed(version: int = 1, concurrency: int = 2) -> Listed:
    return Listed(
        provider="billclap",
        rate=parse_rate("10/second"),
        burst=None,
        concurrency=concurrency,
        version=version,
    )


def checked(name: str) -> CheckedAccount:
    settings = AccountSettings(provider="billclap", base_url="http://127.0.0.1:9", token="t" * 12)
    return check_account(name, settings)


class Loader:
    def __init__(self, answers: dict[str, CheckedAccount | str]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    async def __call__(self, names: list[str]) -> dict[str, CheckedAccount | str]:
        self.asked.append(names)
        return {n: self.answers[n] for n in names if n in self.answers}


def opener(name: str, account: CheckedAccount) -> AccountRuntime:
    return runtime(ScriptedProvider(), name=name, concurrency=account.settings.concurrency)


def fleet_of(loader: Loader, **accounts: Listed) -> Fleet:
    return Fleet(accounts, opener=opener, idle_timeout=60, max_open=10, loader=loader)


async def test_listed_accounts_are_opened_in_one_call_only_before_their_first_claim() -> None:
    loader = Loader({"a": checked("a"), "b": checked("b")})
    fleet = fleet_of(loader, a=listed(), b=listed(concurrency=3))
    # The claim's needs come from the listing, with nothing opened.
    assert (fleet.room("b"), fleet.total_concurrency(), fleet.provider_name("a")) == (
        6, 5, "billclap",
    )  # fmt: skip
    assert fleet.claim_request("a", 2).rate == 10.0
    with pytest.raises(ConfigError, match="not opened"):
        fleet.runtime("a")
    assert await fleet.prepare({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert loader.asked == [["a", "b"]]
    fleet.runtime("a")
    fleet.runtime("b")
    assert await fleet.prepare({"a": 1, "b": 1}) == {"a": 1, "b": 1}
    assert loader.asked == [["a", "b"]]  # open already: not read again


async def test_an_unusable_account_stays_out_until_its_row_changes() -> None:
    loader = Loader({"bad": "account bad: cannot decrypt its secret", "ok": checked("ok")})
    fleet = fleet_of(loader, bad=listed(version=1), ok=listed(), gone=listed())
    assert await fleet.prepare({"bad": 1, "ok": 1, "gone": 1}) == {"ok": 1}
    # Gone since the last reload: skipped this once, not counted as invalid.
    assert ("bad" in fleet, "gone" in fleet, fleet.invalid_count()) == (False, True, 1)
    # A reload with the row as it was: it stays out.
    fleet.replace({"bad": listed(version=1), "ok": listed()})
    assert ("bad" in fleet, fleet.invalid_count()) == (False, 1)
    # Changed: back in, tried at its next claim.
    fleet.replace({"bad": listed(version=2), "ok": listed()})
    assert ("bad" in fleet, fleet.invalid_count()) == (True, 0)
    loader.answers["bad"] = checked("bad")
    assert await fleet.prepare({"bad": 1}) == {"bad": 1}
    assert fleet.runtime("bad").name == "bad"
