"""`invoice-sync dlq ...` and `status --watch` as subprocesses, against the BillClap sandbox.

Flag mistakes are covered in-process by tests/unit/cli/test_dlq.py; here a few show the real
process prints one line and exits 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e


def account(url: str, concurrency: int = 8) -> str:
    return "\n".join(
        [
            "[accounts.shop]",
            'provider = "billclap"',
            f'base_url = "{url}"',
            f'token = "{TOKEN}"',
            'rate_limit = "2000/second"',
            f"concurrency = {concurrency}",
        ]
    )


def jsonl(keys: list[str]) -> str:
    rows = [{"account": "shop", "idempotency_key": k, "payload": invoice(number=k)} for k in keys]
    return "".join(json.dumps(r) + "\n" for r in rows)


async def enqueue_raw(dsn: str, key: str, payload: dict[str, object]) -> None:
    """A producer writing straight to the outbox (the CLI's enqueue would refuse a bad payload)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)", key, json.dumps(payload)
        )
    finally:
        await conn.close()


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr


def check_list(config: Path) -> dict[str, int]:
    """`dlq list` as a table, as JSON and filtered; the ids by key."""
    listed = cli("dlq", "list", config=config)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == [
        "account",
        "id",
        "key",
        "reason",
        "http",
        "attempts",
        "dead_at",
        "error",
    ]
    assert listed.stdout.count("invalid_payload") == 3
    rows = json.loads(cli("dlq", "list", "--json", config=config).stdout)
    ids = {r["idempotency_key"]: r["id"] for r in rows}
    assert set(ids) == {"bad-1", "bad-2", "bad-3"}
    rejected = cli("dlq", "list", "--reason", "rejected", config=config)
    assert "no dead letters match" in rejected.stdout
    one_line_error(cli("dlq", "list", "--reason", "nope", config=config), "not a reason code")
    one_line_error(cli("dlq", "list", "--bogus", config=config), "unrecognized arguments")
    return ids


def check_show(config: Path, dead_id: int) -> None:
    shown = cli("dlq", "show", str(dead_id), config=config)
    assert shown.returncode == 0, shown.stderr
    assert "reason:        invalid_payload" in shown.stdout
    assert '"number": "bad-1"' in shown.stdout
    assert "lines" in shown.stdout.split("error:")[1]
    as_json = json.loads(cli("dlq", "show", str(dead_id), "--json", config=config).stdout)
    assert as_json["payload"]["lines"] == []
    one_line_error(cli("dlq", "show", "999999", config=config), "no dead letter with id 999999")


def check_corrected_replay(config: Path, tmp_path: Path, dead_id: int) -> None:
    """A bad correction is refused in one line before anything changes; a good one replays
    once, and only once."""
    bad_fix = tmp_path / "bad.json"
    bad_fix.write_text(json.dumps(invoice(number="bad-1", lines=[])))
    one_line_error(
        cli("dlq", "replay", str(dead_id), "--payload", str(bad_fix), config=config),
        "is not a valid invoice",
        "lines",
    )
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps(invoice(number="bad-1", notes="fixed")))
    replayed = cli("dlq", "replay", str(dead_id), "--payload", str(fix), config=config)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1, refused 0" in replayed.stdout
    again = cli("dlq", "replay", str(dead_id), config=config)
    assert again.returncode == 1
    assert f"refused {dead_id} (shop/bad-1): already replayed" in again.stdout


def check_purge(config: Path) -> None:
    dry = cli("dlq", "purge", "--older-than", "1h", "--dry-run", config=config)
    assert "would delete 0 dead letters" in dry.stdout
    purged = cli("dlq", "purge", "--older-than", "0s", "--reason", "invalid_payload", config=config)
    assert purged.returncode == 0, purged.stderr
    assert "deleted 3 dead letters older than 0s" in purged.stdout
    left = cli("dlq", "list", "--include-replayed", config=config)
    assert "no dead letters match" in left.stdout


async def test_list_show_replay_purge(dsn: str, tmp_path: Path) -> None:
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url))
        assert cli("enqueue", "-", config=config, stdin=jsonl(["OK-1", "OK-2"])).returncode == 0
        for key in ("bad-1", "bad-2", "bad-3"):
            await enqueue_raw(dsn, key, invoice(number=key, lines=[]))
        assert cli("run", "--drain", config=config).returncode == 0
        ids = check_list(config)
        check_show(config, ids["bad-1"])
        check_corrected_replay(config, tmp_path, ids["bad-1"])

        # The producer fixed bad-3 itself and it synced: replaying the old dead letter is refused.
        await enqueue_raw(dsn, "bad-3", invoice(number="bad-3"))
        assert cli("run", "--drain", config=config).returncode == 0
        refused = cli("dlq", "replay", str(ids["bad-3"]), config=config)
        assert refused.returncode == 1
        assert "key already synced" in refused.stdout
        assert "replayed 0, refused 1" in refused.stdout

        dry = cli("dlq", "replay", "--reason", "invalid_payload", "--dry-run", config=config)
        assert f"would replay {ids['bad-2']} (shop/bad-2)" in dry.stdout
        assert "dry run: replayed 1, refused 1; 1 key already synced" in dry.stdout
        created = get_json(url + "/_sandbox/created")["created"]

    numbers = sorted(r["invoice_number"] for r in created)
    assert numbers == ["OK-1", "OK-2", "bad-1", "bad-3"]  # the replayed row synced, once
    with_replays = cli("dlq", "list", "--include-replayed", "--json", config=config).stdout
    replay_to = {r["idempotency_key"]: r["replayed_to"] for r in json.loads(with_replays)}
    conn = await asyncpg.connect(dsn)
    try:
        synced = await conn.fetchval(
            "SELECT outbox_id FROM invoice_sync.synced WHERE idempotency_key = 'bad-1'"
        )
        assert await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox") == 0
    finally:
        await conn.close()
    assert replay_to["bad-1"] == synced
    assert replay_to["bad-2"] is None
    check_purge(config)


def test_status_watch_until_drained_follows_a_drain_to_100_percent(
    dsn: str, tmp_path: Path
) -> None:
    with sandbox("billclap", "--token", TOKEN, "--latency", "0.02") as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url, concurrency=4))
        keys = [f"W-{i}" for i in range(200)]
        assert cli("enqueue", "-", config=config, stdin=jsonl(keys)).returncode == 0
        command = [sys.executable, "-m", "worker", "--config", str(config)]
        watcher = subprocess.Popen(
            [*command, "status", "--watch", "--until-drained", "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None
            # The first line means the watch has its starting point: only then start draining.
            first = watcher.stdout.readline()
            assert first.startswith("total 0/200 0.0%"), first
            assert cli("run", "--drain", config=config).returncode == 0
            rest, err = watcher.communicate(timeout=60)
            out = first + rest
        finally:
            if watcher.poll() is None:
                watcher.kill()
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) >= 3, out
    assert "\x1b[" not in out  # not a terminal: plain lines, no cursor codes
    assert lines[-1].startswith("total 200/200 100.0%"), lines[-1]
    # Every refresh reads one snapshot: the total never wobbles while rows move between tables.
    assert all(line.split()[1].endswith("/200") for line in lines), out
    assert "shop 200/200 100.0% pending 0 in flight 0 dead 0" in lines[-1]
    assert any("100.0%" not in line for line in lines), "the watch never saw the load unfinished"


def test_status_watch_on_an_empty_outbox_is_drained_at_once(dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", dsn, "")
    drained = cli("status", "--watch", "--until-drained", config=config, timeout=30)
    assert drained.returncode == 0, drained.stderr
    assert "total 0/0 100.0%" in drained.stdout
