"""examples/python/listen_results.py and examples/node/listen_results.js, run as a producer
would run them, while a real daemon drains 1,000 invoices with faults: each prints the final
state of every row once, and that state is what result() says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, sandbox, write_config
from tests.e2e.test_billclap_drain import account
from tests.factories import invoice
from tests.logins import apply_roles, login
from tests.tools import node

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SIZE = 1000
BROKEN = 20  # payloads our validation refuses: dead letters, never sent
CANCELLED = 20  # withdrawn before the drain
FAULTS = ("--error-rate", "0.05", "--stall-rate", "0.02", "--stall-seconds", "2", "--seed", "5")


def node_example(tmp_path: Path) -> Path:
    """A copy of examples/node with its locked dependencies installed (`npm ci`)."""
    copy = tmp_path / "node"
    shutil.copytree(EXAMPLES / "node", copy, ignore=shutil.ignore_patterns("node_modules"))
    npm = shutil.which("npm")
    assert npm is not None, "npm is not installed (Debian package npm)"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return copy / "listen_results.js"


@contextmanager
def listener(command: list[str], url: str) -> Iterator[subprocess.Popen[str]]:
    """The example running as the producer login ``url``; yields once it is listening."""
    process = subprocess.Popen(
        [*command, "--count", str(SIZE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.strip() == "listening", first + process.stderr.read()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def jsonl(prefix: str, count: int) -> str:
    rows = [
        {
            "account": "shop",
            "idempotency_key": f"{prefix}-{i}",
            "payload": invoice(number=f"{prefix}-{i}"),
        }
        for i in range(count)
    ]
    return "\n".join(json.dumps(r) for r in rows) + "\n"


async def seed_broken_and_cancelled(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(BROKEN):
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)",
                f"BAD-{i}",
                json.dumps({"lines": [], "customer": {"name": "X"}}),
            )
        for i in range(CANCELLED):
            key = f"CAN-{i}"
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)",
                key,
                json.dumps(invoice(number=key)),
            )
            assert await conn.fetchval("SELECT invoice_sync.cancel('shop', $1, 'test')", key) == (
                "cancelled"
            )
    finally:
        await conn.close()


async def results(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        keys = await conn.fetch(
            "SELECT idempotency_key FROM invoice_sync.synced UNION ALL"
            " SELECT idempotency_key FROM invoice_sync.dead_letter UNION ALL"
            " SELECT idempotency_key FROM invoice_sync.cancelled UNION ALL"
            " SELECT idempotency_key FROM invoice_sync.outbox"
        )
        found = {}
        for row in keys:
            key = row["idempotency_key"]
            found[key] = await conn.fetchval(
                "SELECT state FROM invoice_sync.result('shop', $1)", key
            )
        return found
    finally:
        await conn.close()


def printed(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def test_both_listener_examples_print_every_final_state_once(
    dsn: str, tmp_path: Path
) -> None:
    script = node_example(tmp_path)
    await apply_roles(dsn)
    async with login(dsn, "producer", ("shop",)) as producer:
        with sandbox("billclap", "--token", TOKEN, *FAULTS) as url, ExitStack() as stack:
            config = write_config(tmp_path / "c.toml", dsn, account(url))
            python = stack.enter_context(
                listener([sys.executable, str(EXAMPLES / "python" / "listen_results.py")], producer)
            )
            javascript = stack.enter_context(listener([str(node()), str(script)], producer))
            await seed_broken_and_cancelled(dsn)
            good = SIZE - BROKEN - CANCELLED
            loaded = cli("enqueue", "-", config=config, stdin=jsonl("WEB", good))
            assert loaded.returncode == 0, loaded.stderr
            run = cli("run", "--drain", config=config, timeout=280)
            assert run.returncode == 0, run.stderr[-2000:]
            heard = {"python": printed(python), "node": printed(javascript)}

    truth = await results(dsn)
    print("final states:", {s: list(truth.values()).count(s) for s in set(truth.values())})
    assert len(truth) == SIZE
    assert set(truth.values()) <= {"synced", "dead", "cancelled"}
    assert sum(state == "cancelled" for state in truth.values()) == CANCELLED
    assert sum(state == "dead" for state in truth.values()) >= BROKEN
    for name, lines in heard.items():
        keys = [line["idempotency_key"] for line in lines]
        assert len(keys) == SIZE, name
        assert len(set(keys)) == SIZE, name  # each row once
        assert {line["idempotency_key"]: line["state"] for line in lines} == truth, name
        synced = [line for line in lines if line["state"] == "synced"]
        assert all(line["provider_invoice_id"] for line in synced), name
