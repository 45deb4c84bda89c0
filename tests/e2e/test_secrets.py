"""No configured secret leaks: a full run with debug logs, faults and failures that dead-letter,
then every byte of output and every stored row is searched for every token.

Each profile gets three accounts, one per token source (in the config file, ``token_env``,
``token_file``), each against its own sandbox that accepts only that account's token. The
database URL carries a password too (the test server trusts loopback, so any password works).
Searched for: each secret, its base64 and URL-encoded forms, and its random core alone (a
truncated echo still leaks).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from tests.e2e.fleet import (
    Sandbox,
    account_block,
    invoices_jsonl,
    option_flags,
    profiles,
    sandbox,
    swap_token,
)
from tests.e2e.processes import cli, write_config
from tests.factories import invoice
from worker.testing.sandbox.profile import Failure, SandboxProfile

pytestmark = pytest.mark.e2e

SOURCES = ("inline", "env", "file")
FAULTS = [
    "--error-rate",
    "0.05",
    "--rate429-rate",
    "0.03",
    "--stall-rate",
    "0.02",
    "--stall-seconds",
    "2",
    "--reset-rate",
    "0.01",
    "--retry-after",
    "0.1",
]
PER_ACCOUNT = 20


def forms(secret: str, core: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        core,
        quote(secret, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        raw.hex(),
    }


def leaks(haystacks: dict[str, str], secrets_: dict[str, set[str]]) -> list[str]:
    return [
        f"{name} contains {form!r} (the {which})"
        for name, text in haystacks.items()
        for which, variants in secrets_.items()
        for form in variants
        if form in text
    ]


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user, _at, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{password}@{host}"))


async def stored_text(dsn: str) -> dict[str, str]:
    """Every row of every invoice_sync table, all columns, as text."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'invoice_sync'"
        )
        found = {}
        for row in tables:
            name = row["tablename"]
            rows = await conn.fetch(f"SELECT t::text AS line FROM invoice_sync.{name} t")
            found[f"table {name}"] = "\n".join(r["line"] for r in rows)
        return found
    finally:
        await conn.close()


async def enqueue_invalid(dsn: str, names: list[str]) -> None:
    """A producer writing payloads our validation refuses straight to the outbox."""
    conn = await asyncpg.connect(dsn)
    try:
        for name in names:
            await conn.execute(
                "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)",
                name,
                f"bad-{name}",
                json.dumps({"lines": [], "customer": {"name": "X"}}),
            )
    finally:
        await conn.close()


async def test_no_secret_reaches_logs_tables_or_command_output(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core_of: dict[str, str] = {}
    secret_of: dict[str, str] = {}
    accounts: list[tuple[str, SandboxProfile, str]] = []
    for profile in profiles():
        for source in SOURCES:
            name = f"{profile.provider}-{source}"
            core = secrets.token_hex(12)
            secret_of[name], core_of[name] = f"tok-{source}-{core}", core
            accounts.append((name, profile, source))
    db_core = secrets.token_hex(12)
    secret_of["database password"], core_of["database password"] = f"pw{db_core}", db_core
    searched = {which: forms(secret_of[which], core_of[which]) for which in secret_of}

    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        blocks, running = [], {}
        for name, profile, source in accounts:
            options = swap_token(profile.options, profile.token, secret_of[name])
            box: Sandbox = stack.enter_context(sandbox(profile, [*option_flags(options), *FAULTS]))
            running[name] = box
            token_line = None
            if source == "env":
                variable = f"INVOICE_SYNC_TEST_TOKEN_{len(env)}"
                env[variable] = secret_of[name]
                token_line = f'token_env = "{variable}"'
            elif source == "file":
                path = tmp_path / f"{name}.token"
                path.write_text(secret_of[name] + "\n")
                token_line = f'token_file = "{path}"'
            else:
                token_line = f"token = {json.dumps(secret_of[name])}"
            blocks.append(account_block(profile, box.url, name=name, token_line=token_line))
        config = write_config(
            tmp_path / "secrets.toml",
            with_password(dsn, secret_of["database password"]),
            "\n".join(blocks),
            max_attempts="50",
        )
        debug = config.read_text().replace("[observe]", '[observe]\nlog_level = "debug"')
        config.write_text(debug)
        await enqueue_invalid(dsn, [name for name, _profile, _source in accounts])
        outputs = run_everything(config, env, accounts, running)

    haystacks = {**outputs, **await stored_text(dsn)}
    assert "table dead_letter" in haystacks
    assert leaks(haystacks, searched) == []
    # The run did exercise what it was meant to: failures of each kind were stored.
    reasons = haystacks["table dead_letter"]
    assert "rejected" in reasons
    assert "invalid_payload" in reasons
    if any(Failure.AUTH_FAILED in p.failures for _n, p, _s in accounts):
        assert "auth_failed" in reasons
    assert '"level": "debug"' in outputs["run 1 stdout"]
    # And the needles do match where they are: the search itself works.
    assert leaks({"config": config.read_text()}, searched)


def run_everything(
    config: Path,
    env: dict[str, str],
    accounts: list[tuple[str, SandboxProfile, str]],
    running: dict[str, Sandbox],
) -> dict[str, str]:
    """Enqueue, drain with faults, break each account's auth, drain again, ask for status:
    every command's stdout and stderr by name."""
    outputs: dict[str, str] = {}

    def record(name: str, *args: str, stdin: str | None = None) -> None:
        result = cli(*args, config=config, env=env, stdin=stdin, timeout=240)
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = result.stdout, result.stderr
        assert result.returncode in (0, 1), (name, result.stderr[-2000:])

    targets = [(name, profile) for name, profile, _source in accounts]
    text, _ = invoices_jsonl(PER_ACCOUNT * len(targets), "SEC", accounts=targets)
    extra = []
    for name, profile, _source in accounts:
        rejected = profile.rejected(invoice(number=f"REJ-{name}"))
        rejected["provider_options"] = {
            **profile.sample_options(0),
            **rejected.get("provider_options", {}),
        }
        extra.append({"account": name, "idempotency_key": f"rej-{name}", "payload": rejected})
    record("check-config", "check-config")
    record("enqueue 1", "enqueue", "-", stdin=text + "\n".join(json.dumps(e) for e in extra))
    record("run 1", "run", "--drain")
    for name, profile, _source in accounts:
        failure = profile.failures.get(Failure.AUTH_FAILED)
        if failure is not None:
            running[name].change(failure)
    text, _ = invoices_jsonl(3 * len(targets), "SEC2", accounts=targets)
    record("enqueue 2", "enqueue", "-", stdin=text)
    record("run 2", "run", "--drain")
    record("status", "status", "--json")
    record("status table", "status")
    record("accounts", "accounts", "list")
    return outputs
