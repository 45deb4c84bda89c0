"""Scenario 7: many accounts. Draining ``many_accounts`` accounts with one invoice each against
one account with as many invoices, at the same total concurrency, in one run; and a replica
with ``many_idle_accounts`` accounts and nothing pending against one with 10.

Every account is a row of ``invoice_sync.account`` (where a platform keeps its merchants), its
token sealed for it under the bench's key, as ``accounts add`` would (copied in bulk: one
COPY, not a CLI call per account); the daemon's config holds only the database, the key file,
``[worker]`` and ``[observe]``. Every daemon is the real CLI (``python -m worker run``) as a
subprocess, so its RSS is its own (``VmHWM``, sampled from /proc); every account is a BillClap
account on the one sandbox (its own process), all with the bench's token, so every invoice is
really created. The total concurrency is ``[worker] max_in_flight``: the one account's
``concurrency`` equals it, the many accounts have ``concurrency = 1`` each. Drain time is the
daemon's whole life under ``run --drain`` (start-up included); start-up is from spawning it to
its ``worker.started`` line. With nothing pending, the claim's time is
``invoice_sync_claim_duration_seconds`` (the ready walk and the claim statement) averaged over
the claims of ``many_idle_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from bench.databases import scratch
from bench.plan import Context
from bench.processes import FREE_PORT, TOKEN, daemon, peak_rss_kb, sandbox
from bench.report import Figure, ScenarioResult
from bench.workload import bulk_load, invoice
from worker.sealed import Keyring, decode_key, new_key

NAME = "many_accounts"
SOLO = "solo"

# One row per account m0000001 .. m{count}; numbers differ so the sandbox creates each.
SPREAD_INSERT = """
INSERT INTO invoice_sync.outbox (account, idempotency_key, payload)
SELECT 'm' || lpad(i::text, 7, '0'), 'M-' || i, jsonb_set($1::jsonb, '{number}', to_jsonb('M-' || i))
  FROM generate_series(1, $2::int) AS i
"""
ACCOUNT_COLUMNS = (
    "name",
    "provider",
    "options",
    "rate_limit",
    "concurrency",
    "secret",
    "secret_key_id",
    "updated_by",
)


def account_name(i: int) -> str:
    return f"m{i:07d}"


class Keys:
    """The bench's secret key, in a file the daemons read (``secret_key_file``)."""

    def __init__(self, workdir: Path) -> None:
        text = new_key()
        self.path = workdir / "secret.key"
        self.path.write_text(text + "\n")
        self.path.chmod(0o600)
        self.ring = Keyring(decode_key(text, "bench key"))


async def add_accounts(
    dsn: str, keys: Keys, url: str, names: list[str], *, concurrency: int
) -> None:
    """BillClap accounts in ``invoice_sync.account``, each token sealed for its own name (the
    name is the AES-GCM associated data: one ciphertext cannot serve two accounts)."""
    options = json.dumps({"base_url": url})
    records = []
    for name in names:
        sealed = keys.ring.seal(name, {"token": TOKEN})
        records.append(
            (name, "billclap", options, "100000/second", concurrency, sealed.ciphertext,
             sealed.key_id, "bench")
        )  # fmt: skip
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "account", schema_name="invoice_sync", columns=ACCOUNT_COLUMNS, records=records
        )
        # What autovacuum would do after a bulk load, done now: otherwise it may run (and the
        # first reads set the new rows' hint bits) inside the idle window being measured.
        await conn.execute("VACUUM (ANALYZE) invoice_sync.account")
    finally:
        await conn.close()


def daemon_config(path: Path, dsn: str, keys: Keys, *, max_in_flight: int) -> Path:
    """A daemon config with no account of its own (they are in the table); product defaults
    otherwise."""
    lines = [
        f'database_url = "{dsn}"',
        f'secret_key_file = "{keys.path}"',
        "[worker]",
        f"max_in_flight = {max_in_flight}",
        'poll_interval = "200ms"',
        "[observe]",
        'log_format = "json"',
        'log_level = "info"',
        f'listen = "{FREE_PORT}"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _log_says(log: Path, event: str) -> bool:
    return log.exists() and event in log.read_text(errors="replace")


async def _started_in(log: Path, spawned: float, pid: int, limit: float = 120.0) -> float | None:
    """Seconds from spawning to the ``worker.started`` line (None if it never came)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if _log_says(log, "worker.started"):
            return time.time() - spawned
        if peak_rss_kb(pid) is None:
            return None
        await asyncio.sleep(0.01)
    return None


async def _drain(ctx: Context, dsn: str, config: Path, label: str) -> dict[str, Any]:
    """``run --drain`` to its exit: wall time, start-up time, peak RSS, rows left."""
    log = ctx.workdir / f"many-{label}.log"
    spawned = time.time()
    process = daemon(config, drain=True, log=log)
    started = await _started_in(log, spawned, process.pid)
    peak = 0
    while process.poll() is None:
        peak = max(peak, peak_rss_kb(process.pid) or 0)
        await asyncio.sleep(0.05)
    wall = time.time() - spawned
    conn = await asyncpg.connect(dsn)
    try:
        left = await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        synced = await conn.fetchval("SELECT count(*) FROM invoice_sync.synced")
    finally:
        await conn.close()
    return {
        "exit_code": process.returncode,
        "drain_seconds": wall,
        "start_seconds": started,
        "peak_rss_mb": peak / 1024 if peak else None,
        "synced": synced,
        "left_in_outbox": left,
    }


def _metrics_port(log: Path) -> int | None:
    match = re.search(r'"event": "health.listening".*?"port": (\d+)', log.read_text())
    if match is None:
        match = re.search(r'"port": (\d+).*?"event": "health.listening"', log.read_text())
    return int(match.group(1)) if match else None


def _claim_seconds(port: int) -> tuple[float, float]:
    """(sum, count) of the claim duration histogram on the daemon's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    total = re.search(r"^invoice_sync_claim_duration_seconds_sum (\S+)$", text, re.M)
    count = re.search(r"^invoice_sync_claim_duration_seconds_count (\S+)$", text, re.M)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


async def _idle(ctx: Context, dsn: str, config: Path, accounts: int) -> dict[str, Any]:
    """A replica with ``accounts`` accounts in the table, nothing pending: start-up, RSS after
    the window, and the mean claim time over the window."""
    log = ctx.workdir / f"idle-{accounts}.log"
    spawned = time.time()
    process = daemon(config, log=log)
    try:
        started = await _started_in(log, spawned, process.pid)
        port = _metrics_port(log) if started is not None else None
        first = _claim_seconds(port) if port else (0.0, 0.0)
        await asyncio.sleep(ctx.sizes.many_idle_seconds)
        last = _claim_seconds(port) if port else (0.0, 0.0)
        rss = peak_rss_kb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    claims = last[1] - first[1]
    return {
        "accounts": accounts,
        "start_seconds": started,
        "peak_rss_mb": rss / 1024 if rss else None,
        "claims": claims,
        "claim_ms": (last[0] - first[0]) / claims * 1000 if claims else None,
    }


async def _idles(ctx: Context, keys: Keys, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same database with 10 accounts, then with ``many_idle_accounts``."""
    lots = ctx.sizes.many_idle_accounts
    async with scratch(ctx.server_dsn, "many_idle") as dsn:
        config = daemon_config(ctx.workdir / "idle.toml", dsn, keys, max_in_flight=ctx.concurrency)
        await add_accounts(dsn, keys, url, [account_name(i) for i in range(1, 11)], concurrency=1)
        few = await _idle(ctx, dsn, config, 10)
        more = [account_name(i) for i in range(11, lots + 1)]
        await add_accounts(dsn, keys, url, more, concurrency=1)
        many = await _idle(ctx, dsn, config, lots)
    return few, many


async def _drains(ctx: Context, keys: Keys, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    count = ctx.sizes.many_accounts
    template = json.dumps(invoice("template"))
    async with scratch(ctx.server_dsn, "many_one") as dsn:
        await bulk_load(dsn, count, prefix="S", account=SOLO)
        await add_accounts(dsn, keys, url, [SOLO], concurrency=ctx.concurrency)
        config = daemon_config(ctx.workdir / "one.toml", dsn, keys, max_in_flight=ctx.concurrency)
        one = await _drain(ctx, dsn, config, "one")
    async with scratch(ctx.server_dsn, "many_spread") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SPREAD_INSERT, template, count)
            await conn.execute("ANALYZE invoice_sync.outbox")
        finally:
            await conn.close()
        names = [account_name(i) for i in range(1, count + 1)]
        await add_accounts(dsn, keys, url, names, concurrency=1)
        config = daemon_config(ctx.workdir / "many.toml", dsn, keys, max_in_flight=ctx.concurrency)
        many = await _drain(ctx, dsn, config, "many")
    return one, many


async def run(ctx: Context) -> ScenarioResult:
    began = time.time()
    count = ctx.sizes.many_accounts
    keys = Keys(ctx.workdir)
    with sandbox() as url:
        one, many = await _drains(ctx, keys, url)
        few, lots = await _idles(ctx, keys, url)
    ratio = many["drain_seconds"] / one["drain_seconds"] if one["drain_seconds"] else None
    peak = max(v for v in (one["peak_rss_mb"], many["peak_rss_mb"], 0.0) if v is not None)
    idle_n = f"{lots['accounts']:,}"
    figures = [
        Figure(measure=f"drain, 1 account x {count:,}", value=one["drain_seconds"], unit="s"),
        Figure(measure=f"drain, {count:,} accounts x 1", value=many["drain_seconds"], unit="s"),
        Figure(measure="drain ratio (many / one)", value=ratio, target="<= 1.5"),
        Figure(measure="peak RSS, 1 account", value=one["peak_rss_mb"], unit="MB"),
        Figure(
            measure=f"peak RSS, {count:,} accounts",
            value=many["peak_rss_mb"],
            unit="MB",
            target="<= 150",
        ),
        Figure(
            measure=f"start-up, {count:,} accounts",
            value=many["start_seconds"],
            unit="s",
            target="<= 2",
        ),
        Figure(measure="RSS, 10 idle accounts", value=few["peak_rss_mb"], unit="MB"),
        Figure(measure=f"RSS, {idle_n} idle accounts", value=lots["peak_rss_mb"], unit="MB"),
        Figure(measure="claim, 10 idle accounts", value=few["claim_ms"], unit="ms"),
        Figure(measure=f"claim, {idle_n} idle accounts", value=lots["claim_ms"], unit="ms"),
        Figure(measure=f"start-up, {idle_n} idle accounts", value=lots["start_seconds"], unit="s"),
    ]
    notes = [
        f"Same total concurrency: [worker] max_in_flight = {ctx.concurrency} in every daemon; "
        f"the one account has concurrency {ctx.concurrency}, each of the many has 1.",
        "Accounts are rows of invoice_sync.account, each token sealed for its account (BillClap, "
        "one sandbox in its own process); the daemon's TOML has none. Drain = spawn to exit of "
        "`run --drain`, start-up included.",
        f"Idle: nothing pending, poll 200 ms; claim time = mean of "
        f"invoice_sync_claim_duration_seconds over {ctx.sizes.many_idle_seconds:g} s.",
    ]
    return ScenarioResult(
        scenario=NAME,
        title="many accounts",
        size=ctx.size,
        figures=figures,
        details={
            "one": one,
            "many": many,
            "idle_few": few,
            "idle_many": lots,
            "concurrency": ctx.concurrency,
        },
        notes=notes,
        elapsed=time.time() - began,
        top={"peak_rss_mb": peak or None, "drain_ratio": ratio},
    )
