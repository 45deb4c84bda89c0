"""Two `invoice-sync run` replicas follow the account table while invoices flow against a BillClap
sandbox that checks each token: `accounts add` starts an account, `accounts update
--secret-stdin` changes a token (the sandbox then accepts only the new one), `--disable` stops
one, `accounts remove` ends one. Each change reaches both replicas within 2 s; nothing is lost
(every row synced, or still pending for the disabled or removed account) and nothing is sent
with a wrong token (the sandbox records which token sent each invoice, and refused none)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.processes import cli, sandbox, write_config
from tests.factories import invoice
from worker.sealed import new_key

pytestmark = pytest.mark.e2e

TOKENS = {
    "alpha": "alpha-token-0123456789",
    "beta": "beta-old-token-0123456",
    "hold": "hold-token-0123456789",
    "gone": "gone-token-0123456789",
    "newbie": "newbie-token-01234567",
}
BETA_NEW = "beta-new-token-6543210"
WITHIN = 2.0


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sandbox_call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # loopback only
        url + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # loopback only
        return json.loads(response.read())


def add(config: Path, env: dict[str, str], name: str, url: str, token: str) -> None:
    done = cli(
        "accounts", "add", name, "--provider", "billclap", "--set", f"base_url={url}",
        "--rate-limit", "100/second", "--concurrency", "4", "--secret-stdin",
        config=config, env=env, stdin=token,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def reload_events(logs: Path) -> dict[str, list[dict[str, Any]]]:
    """Each replica's ``accounts.reloaded`` lines so far."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(logs.glob("replica*.out")):
        events = seen.setdefault(path.name, [])
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"accounts.reloaded"' in line:
                events.append(json.loads(line))
    return seen


async def spread(dsn: str, logs: Path, name: str, field: str | None = None) -> float:
    """Seconds from the change to ``name``'s row (its audit entry, written in its transaction)
    to the later of the two replicas' first ``accounts.reloaded`` lines after it: each has
    then taken the change in. With ``field``, at least one of them (the replicas that have the
    account open: those that claimed its rows) names ``name`` there."""
    async with Connection(dsn) as conn:
        changed = await conn.fetchval(
            "SELECT max(at) FROM invoice_sync.audit WHERE target->>'account' = $1", name
        )
    deadline = time.monotonic() + 10
    while True:
        events = reload_events(logs)
        firsts = [
            next((e for e in r if datetime.fromisoformat(e["timestamp"]) >= changed), None)
            for r in events.values()
        ]
        if len(firsts) == 2 and all(firsts):
            break
        assert time.monotonic() < deadline, f"{name}: the change not seen by both replicas"
        await asyncio.sleep(0.02)
    if field is not None:
        assert any(name in e[field] for e in firsts if e), (field, name, firsts)
    seen = max(datetime.fromisoformat(e["timestamp"]) for e in firsts if e)
    return float((seen - changed).total_seconds())


class Producer:
    """Enqueues an invoice for each flowing account every 50 ms."""

    def __init__(self, dsn: str, accounts: set[str]) -> None:
        self.accounts = accounts
        self._dsn = dsn
        self._counts: dict[str, int] = {}

    async def enqueue(self, conn: asyncpg.Connection, account: str) -> None:
        i = self._counts[account] = self._counts.get(account, 0) + 1
        await conn.execute(
            "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)",
            account,
            f"{account}-{i}",
            json.dumps(invoice(number=f"{account.upper()}-{i}")),
        )

    def enqueued(self) -> int:
        return sum(self._counts.values())

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while not stop.is_set():
                for account in sorted(self.accounts):
                    await self.enqueue(conn, account)
                await asyncio.sleep(0.05)
        finally:
            await conn.close()


async def rows_left(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT account, count(*) FROM invoice_sync.outbox GROUP BY account"
        )
        return {r["account"]: r["count"] for r in rows}
    finally:
        await conn.close()


async def until(check: Any, what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_two_replicas_follow_account_changes_while_invoices_flow(
    dsn: str, tmp_path: Path
) -> None:
    env = {"INVOICE_SYNC_SECRET_KEY": new_key()}
    logs = tmp_path / "logs"
    logs.mkdir()
    started = time.monotonic()
    # The new token is not valid until the change: the sandbox starts without it.
    tokens = list(TOKENS.values())
    with sandbox("billclap", *[flag for token in tokens for flag in ("--token", token)]) as url:
        config = write_config(tmp_path / "c.toml", dsn, "")
        assert cli("migrate", config=config).returncode == 0
        for name in ("alpha", "beta", "hold", "gone"):
            add(config, env, name, url, TOKENS[name])
        producer = Producer(dsn, {"alpha", "beta", "hold", "gone"})
        stop = asyncio.Event()
        fleet = Fleet(config=config, log_dir=logs, size=2, env=env)
        fleet.start()
        try:
            fleet.wait_started()
            flowing = asyncio.create_task(producer.run(stop))
            taken = await change_accounts(Steps(config, env, url, dsn, logs), producer)
            stop.set()
            await flowing
            await until(lambda: _only_held_left(dsn), "flowing accounts not drained", 20)
            assert fleet.alive() == [0, 1]
        finally:
            stop.set()
            fleet.stop()
        created = sandbox_call(url, "/_sandbox/created")["created"]
        stats = sandbox_call(url, "/_sandbox/stats")
    check_tokens(created, stats)
    # Nothing lost: sent once each; only the disabled and removed accounts' rows wait.
    left = await rows_left(dsn)
    assert set(left) == {"hold", "gone"}, left
    assert left["gone"] == 1
    synced = await _synced(dsn)
    assert synced == len(created)
    assert synced + sum(left.values()) == producer.enqueued()
    assert max(taken.values()) < WITHIN, taken
    print(f"reload seen by both replicas (s): {taken}; test {time.monotonic() - started:.1f} s")


@dataclass(frozen=True)
class Steps:
    config: Path
    env: dict[str, str]
    url: str
    dsn: str
    logs: Path

    def cli(self, *args: str, stdin: str | None = None) -> None:
        done = cli(*args, config=self.config, env=self.env, stdin=stdin)
        assert done.returncode == 0, done.stderr


async def change_accounts(steps: Steps, producer: Producer) -> dict[str, float]:
    """Add, change the token of, disable and remove accounts while the producer runs; how long
    each took to reach both replicas."""
    dsn, logs, taken = steps.dsn, steps.logs, {}
    await asyncio.sleep(1.0)
    # Added: no replica reads it until it has rows, which then flow (checked at the end).
    add(steps.config, steps.env, "newbie", steps.url, TOKENS["newbie"])
    taken["add"] = await spread(dsn, logs, "newbie")
    producer.accounts.add("newbie")
    await asyncio.sleep(1.0)

    # Both valid while the change spreads, then the old one refused.
    tokens = list(TOKENS.values())
    sandbox_call(steps.url, "/_sandbox/state", {"tokens": [*tokens, BETA_NEW]})
    steps.cli("accounts", "update", "beta", "--secret-stdin", stdin=BETA_NEW)
    taken["change"] = await spread(dsn, logs, "beta", "changed")
    tokens = [t for t in tokens if t != TOKENS["beta"]] + [BETA_NEW]
    sandbox_call(steps.url, "/_sandbox/state", {"tokens": tokens})
    await asyncio.sleep(1.0)

    steps.cli("accounts", "update", "hold", "--disable")
    taken["disable"] = await spread(dsn, logs, "hold", "removed")
    await asyncio.sleep(0.5)  # rows for it keep coming, and wait

    producer.accounts.discard("gone")
    await until(lambda: _none_left(dsn, "gone"), "gone's rows not drained before removal", 20)
    steps.cli("accounts", "remove", "gone")
    taken["remove"] = await spread(dsn, logs, "gone", "removed")
    async with Connection(dsn) as conn:
        await producer.enqueue(conn, "gone")  # after removal: nobody claims it
    await asyncio.sleep(1.0)
    return taken


def check_tokens(created: list[dict[str, Any]], stats: dict[str, Any]) -> None:
    """Nothing refused for its token (401), and each invoice under its account's token."""
    statuses = {status for route in stats["requests"].values() for status in route}
    assert "401" not in statuses, stats["requests"]
    allowed = {name: {digest(token)} for name, token in TOKENS.items()}
    allowed["beta"].add(digest(BETA_NEW))
    by_account: dict[str, list[str]] = {}
    for record in created:
        account = record["invoice_number"].rsplit("-", 1)[0].lower()
        assert record["token_sha256"] in allowed[account], record["invoice_number"]
        by_account.setdefault(account, []).append(record["token_sha256"])
    assert by_account["beta"][-1] == digest(BETA_NEW)
    assert digest(TOKENS["beta"]) in by_account["beta"]  # the old one, before the change
    assert "newbie" in by_account


class Connection:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    async def __aenter__(self) -> asyncpg.Connection:
        self._c: asyncpg.Connection = await asyncpg.connect(self._dsn)
        return self._c

    async def __aexit__(self, *_exc: object) -> None:
        await self._c.close()


async def _none_left(dsn: str, account: str) -> bool:
    return account not in await rows_left(dsn)


async def _only_held_left(dsn: str) -> bool:
    return set(await rows_left(dsn)) <= {"hold", "gone"}


async def _synced(dsn: str) -> int:
    async with Connection(dsn) as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM invoice_sync.synced")
        return count
