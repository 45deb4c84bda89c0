"""``invoice-sync accounts add|update|remove|show|rotate-key|list`` against a real database: what
each writes, what it audits, what it refuses (one line, exit 2), and that no secret is printed."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from worker.cli import config as configured
from worker.cli.main import main
from worker.sealed import new_key

TOKEN = "bc_live_cli_token_987654321"
SANDBOX = "http://127.0.0.1:9"


def fetch(dsn: str, query: str, *args: object) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def cli(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Runs ``invoice-sync ARGS`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setenv("INVOICE_SYNC_DATABASE_URL", dsn)
    monkeypatch.setenv("INVOICE_SYNC_SECRET_KEY", new_key())
    monkeypatch.delenv("INVOICE_SYNC_CONFIG", raising=False)
    # In-process: logging would keep writing to this test's captured stderr after it closes.
    monkeypatch.setattr(configured, "configure_logging", lambda **_: None)
    (tmp_path / "token").write_text(TOKEN + "\n")

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = main([*args])
        except SystemExit as exit_:  # argparse's own refusals exit from the parser
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        assert TOKEN not in out + err
        return code, out, err

    run.token_file = str(tmp_path / "token")  # type: ignore[attr-defined]
    return run


def add(cli: Any, name: str = "shop", *more: str) -> tuple[int, str, str]:
    return cli(  # type: ignore[no-any-return]
        "accounts", "add", name, "--provider", "billclap", "--set", f"base_url={SANDBOX}",
        "--secret-file", cli.token_file, *more,
    )  # fmt: skip


def audit(dsn: str) -> list[tuple[str, dict[str, Any], int]]:
    rows = fetch(dsn, "SELECT action, target, rows FROM invoice_sync.audit ORDER BY id")
    return [(r["action"], json.loads(r["target"]), r["rows"]) for r in rows]


def test_add_writes_a_sealed_row_and_its_audit_entry(cli: Any, dsn: str) -> None:
    assert add(cli, "shop", "--rate-limit", "120/minute", "--concurrency", "7")[:2] == (
        0,
        "added shop (billclap)\n",
    )
    [row] = fetch(dsn, "SELECT * FROM invoice_sync.account")
    assert (row["provider"], json.loads(row["options"]), row["rate_limit"], row["concurrency"]) == (
        "billclap", {"base_url": SANDBOX}, "120/minute", 7,
    )  # fmt: skip
    assert TOKEN.encode() not in bytes(row["secret"])
    assert row["updated_by"].count("@") == 1
    [(action, target, rows)] = audit(dsn)
    assert (action, target["account"], target["secret_key_id"], rows) == (
        "account.add", "shop", row["secret_key_id"], 1,
    )  # fmt: skip
    assert TOKEN not in json.dumps(target)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--provider", "nope", "--secret-stdin"), "provider 'nope' is not one of"),
        (("--provider", "billclap", "--set", f"base_url={SANDBOX}"), "one of the arguments"),
        (("--provider", "billclap", "--set", "base_url", "--secret-stdin"), "expected KEY=VALUE"),
        (("--provider", "billclap", "--set", f"base_url={SANDBOX}", "--set", "bank=1",
          "--secret-stdin"), "bank"),
        (("--provider", "billclap", "--set", f"base_url={SANDBOX}", "--set", "token=x",
          "--secret-stdin"), "give secrets as --secret-file or --secret-stdin"),
        (("--provider", "billclap", "--set", "base_url=http://example.com", "--secret-stdin"),
         "base_url"),
    ],
)  # fmt: skip
def test_add_refuses_bad_input_in_one_line_exit_2(
    cli: Any, dsn: str, args: tuple[str, ...], message: str
) -> None:
    code, _out, err = cli("accounts", "add", "shop", *args, stdin=TOKEN)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert fetch(dsn, "SELECT name FROM invoice_sync.account") == []


def test_add_refuses_an_existing_name_and_a_missing_secret(cli: Any, dsn: str) -> None:
    add(cli)
    code, _out, err = add(cli)
    assert (code, err) == (2, "invoice-sync: accounts add: shop exists already\n")
    code, _out, err = cli(
        "accounts", "add", "other", "--provider", "billclap", "--set", f"base_url={SANDBOX}",
        "--secret-stdin", stdin="  \n",
    )  # fmt: skip
    assert (code, err) == (2, "invoice-sync: accounts add: --secret-stdin is empty\n")


def test_update_changes_what_it_is_told_keeps_the_rest_and_audits(cli: Any, dsn: str) -> None:
    add(cli)
    [before] = fetch(dsn, "SELECT secret FROM invoice_sync.account")
    assert cli("accounts", "update", "shop", "--concurrency", "2", "--disable")[0] == 0
    [row] = fetch(dsn, "SELECT * FROM invoice_sync.account")
    assert (row["concurrency"], row["enabled"], row["rate_limit"]) == (2, False, "60/minute")
    assert row["secret"] == before["secret"]
    assert (
        cli("accounts", "update", "shop", "--secret-stdin", "--enable", stdin="new_tok_12345")[0]
        == 0
    )
    [row] = fetch(dsn, "SELECT * FROM invoice_sync.account")
    assert row["enabled"]
    assert row["secret"] != before["secret"]
    assert [a for a, _t, _r in audit(dsn)] == ["account.add", "account.update", "account.update"]
    code, _out, err = cli("accounts", "update", "nobody", "--disable")
    assert (code, err) == (2, "invoice-sync: accounts update: no account nobody in the database\n")
    code, _out, err = cli("accounts", "update", "shop", "--concurrency", "0")
    assert code == 2
    assert "concurrency" in err
    assert err.count("\n") == 1


def test_show_and_list_never_print_the_secret(cli: Any) -> None:
    add(cli)
    code, out, _err = cli("accounts", "show", "shop")
    assert code == 0
    assert "provider:    billclap" in out
    assert "secret:      set (key id " in out
    code, out, _err = cli("accounts", "list")
    assert (code, out) == (0, "shop  billclap  database  active\n")


def test_remove_is_refused_while_rows_wait_force_pauses_instead(cli: Any, dsn: str) -> None:
    add(cli)
    fetch(dsn, "SELECT invoice_sync.enqueue('shop', 'k-1', '{}'::jsonb)")
    code, _out, err = cli("accounts", "remove", "shop")
    assert code == 2
    assert "1 rows still to send" in err
    assert cli("accounts", "remove", "shop", "--force")[:2] == (
        0,
        "paused shop instead of removing it: 1 rows still to send\n",
    )
    [state] = fetch(dsn, "SELECT paused FROM invoice_sync.account_state WHERE account = 'shop'")
    assert state["paused"]
    assert len(fetch(dsn, "SELECT name FROM invoice_sync.account")) == 1
    fetch(dsn, "DELETE FROM invoice_sync.outbox")
    assert cli("accounts", "remove", "shop")[:2] == (0, "removed shop\n")
    assert fetch(dsn, "SELECT name FROM invoice_sync.account") == []
    assert [a for a, _t, _r in audit(dsn)] == ["account.add", "account.pause", "account.remove"]


def test_rotate_key_reseals_every_secret_under_the_new_key_in_batches(
    cli: Any, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        add(cli, f"shop-{n}")
    old = os.environ["INVOICE_SYNC_SECRET_KEY"]
    monkeypatch.setenv("INVOICE_SYNC_SECRET_KEY", new_key())
    code, _out, err = cli("accounts", "show", "shop-0")
    assert code == 0  # show opens nothing
    code, _out, err = cli("accounts", "rotate-key")
    assert code == 2
    assert err.startswith("invoice-sync: config error: account shop-0: cannot decrypt")
    monkeypatch.setenv("INVOICE_SYNC_PREVIOUS_SECRET_KEYS", json.dumps([old]))
    code, out, _err = cli("accounts", "rotate-key", "--batch", "2")
    assert code == 0
    assert out.startswith("re-encrypted 5 secrets under key ")
    ids = {r["secret_key_id"] for r in fetch(dsn, "SELECT secret_key_id FROM invoice_sync.account")}
    assert ids == {out.split()[-1]}
    assert [r for a, _t, r in audit(dsn) if a == "account.rotate-key"] == [2, 2, 1]
    monkeypatch.delenv("INVOICE_SYNC_PREVIOUS_SECRET_KEYS")
    assert cli("accounts", "update", "shop-1", "--concurrency", "3")[0] == 0  # opens, new key


def test_new_key_prints_a_fresh_key_and_needs_no_config(cli: Any) -> None:
    first, second = cli("accounts", "new-key")[1], cli("accounts", "new-key")[1]
    assert first != second
    assert len(first.strip()) == 44


def test_rotate_key_passes_a_locked_row_by_and_says_to_run_again(
    cli: Any, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg  # noqa: PLC0415  # a second, synchronous session holding a row lock

    for n in range(3):
        add(cli, f"shop-{n}")
    monkeypatch.setenv(
        "INVOICE_SYNC_PREVIOUS_SECRET_KEYS", json.dumps([os.environ["INVOICE_SYNC_SECRET_KEY"]])
    )
    monkeypatch.setenv("INVOICE_SYNC_SECRET_KEY", new_key())
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT 1 FROM invoice_sync.account WHERE name = 'shop-1' FOR UPDATE")
        code, out, _err = cli("accounts", "rotate-key")
        assert code == 1
        assert out.splitlines()[0].startswith("re-encrypted 2 secrets under key ")
        assert out.splitlines()[1] == "1 secrets are still under an older key: run rotate-key again"
    code, out, _err = cli("accounts", "rotate-key")
    assert code == 0
    assert out.startswith("re-encrypted 1 secrets")


def test_check_config_checks_the_database_accounts_and_names_a_skipped_one(
    cli: Any, dsn: str
) -> None:
    add(cli)
    fetch(
        dsn,
        "INSERT INTO invoice_sync.account (name, provider, options, updated_by)"
        " VALUES ('typo', 'billclap', '{\"base_url\": \"http://127.0.0.1:9\", \"bnk\": 1}', 'psql')",
    )
    code, out, _err = cli("check-config")
    assert code == 0
    # Logging is left unconfigured here: structlog's default prints the event on stdout too.
    lines = [line for line in out.splitlines() if "account.invalid" not in line]
    assert lines[0].startswith("account shop: billclap, ")
    assert lines[1].startswith("account typo: skipped, invalid: ")
    assert "bnk" in lines[1]
    assert lines[2] == "config OK, 1 accounts in the database skipped"
    assert cli("check-config", "--no-database")[1] == "config OK\n"
