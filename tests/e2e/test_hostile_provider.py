"""The real daemon against a hostile provider: one account's sandbox redirects to another host,
answers with gzip bombs, drips its answers and echoes the credential where answers are cut;
the other accounts' sandboxes behave.

Shown: nothing reaches the host the redirects point to; no secret (nor its first six
characters) is in the daemon's logs, /metrics, any table, or the output of ``status``,
``accounts list`` and ``dlq list/show``; the worker's peak RSS stays under 150 MB; every row is
synced, still in the outbox, or dead-lettered with a reason; the healthy accounts sync all.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.daemons import daemons, read_logs
from tests.e2e.fleet import (
    Sandbox,
    account_block,
    invoices_jsonl,
    option_flags,
    sandbox,
    swap_token,
)
from tests.e2e.processes import cli, write_config
from tests.e2e.test_health import fetch, free_port
from tests.e2e.test_secrets import stored_text, with_password
from worker.testing.sandbox import PROFILES

pytestmark = pytest.mark.e2e

HOSTILE = "billclap"
HEALTHY = ("billit", "refrens")
PER_ACCOUNT = 24
PEAK_RSS_LIMIT = 150 * 1024 * 1024
# Rates per API request of the hostile sandbox; the seed makes the run replayable.
FAULTS = {"redirect": 0.08, "inflate": 0.1, "drip": 0.08, "echo": 0.15}
SEED = 11


class Target:
    """The host redirects point to: records every request line, header and body it gets."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                recorder.seen.append(f"{self.requestline}\n{self.headers}\n{body}")
                answer = json.dumps({"invoice_id": "evil-1", "accessToken": "evil"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = _record  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextlib.contextmanager
    def running(self) -> Iterator[Target]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def hostile_flags(target: str) -> list[str]:
    flags = [f"--{kind}-rate={rate}" for kind, rate in FAULTS.items()]
    return [
        *flags,
        "--redirect-to",
        target,
        "--inflate-mib",
        "64",
        "--drip-seconds",
        "3",
        "--seed",
        str(SEED),
    ]


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def settled(dsn: str, accounts: list[str], within: float) -> dict[str, int]:
    """Waits until none of ``accounts`` has a row in the outbox (or ``within`` s): rows left."""
    deadline = time.monotonic() + within
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT account, count(*) AS n FROM invoice_sync.outbox "
                "WHERE account = ANY($1) GROUP BY account",
                accounts,
            )
            left = {r["account"]: r["n"] for r in rows}
            if not left or time.monotonic() > deadline:
                return left
            await conn.execute("SELECT pg_sleep(0.2)")
    finally:
        await conn.close()


async def fates(dsn: str) -> dict[str, dict[str, int]]:
    """Per account: rows in the outbox, synced, and dead-lettered (with a reason)."""
    conn = await asyncpg.connect(dsn)
    try:
        found: dict[str, dict[str, int]] = {}
        for table, where in [
            ("outbox", "true"),
            ("synced", "true"),
            ("dead_letter", "coalesce(reason, '') <> ''"),
        ]:
            rows = await conn.fetch(
                f"SELECT account, count(*) AS n FROM invoice_sync.{table} "
                f"WHERE {where} GROUP BY account"
            )
            for row in rows:
                found.setdefault(row["account"], {})[table] = row["n"]
        return found
    finally:
        await conn.close()


def operator_outputs(config: Path, env: dict[str, str]) -> dict[str, str]:
    """What an operator reads: status (table and JSON), accounts, dead letters listed and shown."""
    outputs: dict[str, str] = {}
    for args in (["status"], ["status", "--json"], ["accounts", "list"], ["dlq", "list"]):
        result = cli(*args, config=config, env=env)
        assert result.returncode in (0, 1), (args, result.stderr[-2000:])
        outputs[" ".join(args)] = result.stdout + result.stderr
    listed = cli("dlq", "list", "--json", config=config, env=env).stdout
    for item in json.loads(listed or "[]")[:20]:
        shown = cli("dlq", "show", str(item["id"]), config=config, env=env)
        outputs[f"dlq show {item['id']}"] = shown.stdout + shown.stderr
    return outputs


async def test_a_hostile_provider_cannot_leak_a_secret_or_starve_the_others(
    dsn: str, tmp_path: Path
) -> None:
    # "Zq" and a digit start no hex id, uuid or word, so six characters are a telling prefix.
    names = (HOSTILE, *HEALTHY)
    token_of = {name: f"Zq{i}{secrets.token_hex(14)}" for i, name in enumerate(names)}
    password = f"Zqpw{secrets.token_hex(12)}"
    needles = {*token_of.values(), password}
    needles |= {needle[:6] for needle in needles}

    with Target().running() as target, contextlib.ExitStack() as stack:
        blocks, boxes = [], {}
        for provider, token in token_of.items():
            profile = PROFILES[provider]
            flags = option_flags(swap_token(profile.options, profile.token, token))
            if provider == HOSTILE:
                flags += hostile_flags(target.url)
            box: Sandbox = stack.enter_context(sandbox(profile, flags))
            boxes[provider] = box
            line = f"token = {json.dumps(token)}"
            blocks.append(account_block(profile, box.url, name=provider, token_line=line))
        port = free_port()
        config = write_config(
            tmp_path / "hostile.toml",
            with_password(dsn, password),
            "\n".join(blocks),
            pause_cooldown='"1s"',
            max_attempts="60",
        )
        text = config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        config.write_text(text.replace("[observe]", '[observe]\nlog_level = "debug"'))
        targets = [(provider, PROFILES[provider]) for provider in token_of]
        rows, _ = invoices_jsonl(PER_ACCOUNT * len(targets), "HOST", accounts=targets)
        assert cli("enqueue", "-", config=config, stdin=rows).returncode == 0

        with daemons(config, 1, tmp_path / "logs") as fleet:
            left_healthy = await settled(dsn, list(HEALTHY), within=30)
            left_hostile = await settled(dsn, [HOSTILE], within=15)
            peak = peak_rss(fleet.replicas[0].process.pid)
            _, metrics = fetch(f"http://127.0.0.1:{port}/metrics")
            assert fleet.alive() == [0], "the worker died"
        injected = boxes[HOSTILE].stats()["faults_injected"]
        outputs = operator_outputs(config, {})

    assert left_healthy == {}, f"healthy accounts left rows behind: {left_healthy}"
    assert target.seen == [], target.seen[:3]
    assert peak < PEAK_RSS_LIMIT, f"worker peak RSS {peak / 2**20:.0f} MiB"
    assert set(FAULTS) <= set(injected), injected  # the run met every hostile answer

    haystacks = {"logs": read_logs(tmp_path / "logs"), "metrics": metrics, **outputs}
    haystacks |= await stored_text(dsn)
    leaks = [f"{where}: {n!r}" for where, text in haystacks.items() for n in needles if n in text]
    assert leaks == []

    by_account = await fates(dsn)
    for provider in token_of:
        counts = by_account.get(provider, {})
        assert sum(counts.values()) == PER_ACCOUNT, (provider, counts, left_hostile)
    for provider in HEALTHY:
        assert by_account[provider].get("synced") == PER_ACCOUNT, by_account[provider]
