"""Text the database holds is not ours (producers write account names and keys, providers write
error messages): what the operator commands print from it has its control characters escaped,
so none reaches the terminal to retitle, clear or rewrite it. What is stored is left as it is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg
import pytest

from worker.cli.main import main

HOSTILE = "refused\x1b]0;PWNED\x07\x1b[2J\x9b31m\r\nsecond line"
ACCOUNT = "shop\x1b[5m"
KEY = "k-\x1b]0;key\x07"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every control character but \n


@pytest.fixture
async def hostile(dsn: str, tmp_path: Path) -> Path:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload,"
            " reason, error, http_status, response, attempts, first_attempt_at)"
            " VALUES (1, $1, $2, $3::jsonb, 'rejected', $4, 422, $3::jsonb, 1, now())",
            ACCOUNT,
            KEY,
            json.dumps({"message": HOSTILE}),
            HOSTILE,
        )
        await conn.execute(
            "INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key,"
            " attempt, worker, provider, started_at, duration_ms, http_status, outcome, reason,"
            " error, outcome_unknown, calls) VALUES (1, 1, $1, $2, 1, 'w', 'billclap', now(), 5,"
            " 422, 'dead_letter', 'rejected', $3, false, $4::jsonb)",
            ACCOUNT,
            KEY,
            HOSTILE,
            json.dumps([{"kind": HOSTILE, "http_status": 422, "duration_ms": 5}]),
        )
        await conn.execute(
            "INSERT INTO invoice_sync.account_state (account, paused, pause_reason, pause_error)"
            " VALUES ($1, true, 'auth_failed', $2)",
            ACCOUNT,
            HOSTILE,
        )
    finally:
        await conn.close()
    config = tmp_path / "config.toml"
    config.write_text(f'database_url = "{dsn}"\n')
    return config


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    "command",
    [
        ["dlq", "show", "1"],
        ["dlq", "list"],
        ["dlq", "replay", "1", "--dry-run"],
        ["show", ACCOUNT, KEY],
        ["accounts", "list"],
        ["status"],
    ],
    ids=["dlq show", "dlq list", "dlq replay", "show", "accounts list", "status"],
)
def test_text_from_the_database_is_printed_escaped(
    command: list[str], hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--config", str(hostile), *command])
    out = capsys.readouterr()
    printed = out.out + out.err
    assert CONTROL.findall(printed) == [], printed
    assert "shop\\x1b[5m" in printed  # escaped, still legible


@pytest.mark.usefixtures("restore_logging")
def test_the_error_keeps_its_lines_and_shows_its_escapes(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--config", str(hostile), "dlq", "show", "1"])
    out = capsys.readouterr().out
    assert "  refused\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m\\r\n  second line\n" in out
