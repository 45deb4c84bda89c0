"""``invoice-sync enqueue`` with a file of hostile lines: each bad line reported by number on
stderr, every good line loaded, exit code 1 (some lines were bad), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import cli, cli_bytes, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e


def good(key: str) -> str:
    return json.dumps({"account": "shop", "idempotency_key": key, "payload": invoice(number=key)})


def with_payload(key: str, payload_json: str) -> str:
    return f'{{"account": "shop", "idempotency_key": "{key}", "payload": {payload_json}}}'


NUL_NOTES = json.dumps(invoice(number="N", notes="a\u0000b"))
NAN_OPTION = json.dumps(invoice(number="X"))[:-1] + ', "provider_options": {"x": NaN}}'
DEEP = "[" * 5000 + "]" * 5000
LINES = [
    good("g1"),
    with_payload("nul", NUL_NOTES),  # 2: jsonb cannot hold \u0000
    "",  # 3: blank, skipped
    good("g2"),
    with_payload("deep", DEEP),  # 5
    '{"account": "shop", "idempotency_key": "k\\ud800", "payload": {}}',  # 6: lone surrogate
    with_payload("nan", NAN_OPTION),  # 7: NaN is not JSON to PostgreSQL
    "[1, 2, 3]",  # 8
    "{not json",  # 9
    with_payload("huge", '"' + "x" * 2_000_000 + '"'),  # 10
    good("g3"),
]
BAD = [2, 5, 6, 7, 8, 9, 10]


async def test_hostile_lines_are_reported_by_number_and_good_ones_load(
    dsn: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        dsn,
        '[accounts.shop]\nprovider = "billclap"\nbase_url = "http://127.0.0.1:9"\ntoken = "t"',
    )
    path = tmp_path / "invoices.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    result = cli("enqueue", str(path), config=config)

    assert result.returncode == 1, result.stderr[-2000:]
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [int(line.split()[1].rstrip(":")) for line in reported] == BAD, result.stderr
    assert len(result.stderr.splitlines()) == len(BAD)
    assert all(len(line) < 1000 for line in reported)
    assert "Traceback" not in result.stderr
    assert "loaded 3" in result.stdout
    assert "bad 7" in result.stdout
    conn = await asyncpg.connect(dsn)
    try:
        keys = await conn.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY 1")
    finally:
        await conn.close()
    assert [r["idempotency_key"] for r in keys] == ["g1", "g2", "g3"]


def raw_line(key: bytes, *, available_at: str | None = None) -> bytes:
    record = json.loads(good("KEY"))
    if available_at is not None:
        record["available_at"] = available_at
    return json.dumps(record).replace('"KEY"', '"' + "@" * 3 + '"').encode().replace(b"@@@", key)


# Line 2: bytes that are not UTF-8 in a key; line 4: in the payload; line 5: outside any string;
# line 6: an available_at whose UTC time is past year 9999 (PostgreSQL could hold it, Python's
# datetime cannot, and the whole chunk used to be lost); line 7: one before year 1.
MIXED = [
    raw_line(b"m1"),
    raw_line(b"m\xff2"),
    raw_line(b"m3"),
    raw_line(b"m4").replace(b'"customer"', b'"notes": "caf\xe9", "customer"'),
    b"\xfe\xff" + raw_line(b"m5"),
    raw_line(b"m6", available_at="9999-12-31T23:59:59-14:00"),
    raw_line(b"m7", available_at="0001-01-01T00:00:00+14:00"),
    raw_line(b"m8", available_at="2026-07-01T09:00:00+05:30"),
]
MIXED_BAD = [2, 4, 5, 6, 7]


async def keys_in(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT idempotency_key FROM invoice_sync.outbox ORDER BY 1")
    finally:
        await conn.close()
    return [r["idempotency_key"] for r in rows]


@pytest.mark.parametrize("source", ["file", "stdin"])
async def test_bytes_that_are_not_utf8_and_times_out_of_range_are_bad_lines(
    dsn: str, tmp_path: Path, source: str
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        dsn,
        '[accounts.shop]\nprovider = "billclap"\nbase_url = "http://127.0.0.1:9"\ntoken = "t"',
    )
    data = b"\n".join(MIXED) + b"\n"
    # A strict standard input (as some locales give) must not turn a bad byte into a traceback.
    env = {"PYTHONIOENCODING": "utf-8:strict"}
    if source == "file":
        path = tmp_path / "invoices.jsonl"
        path.write_bytes(data)
        result = cli("enqueue", str(path), config=config, env=env)
    else:
        result = cli_bytes(["enqueue", "-"], config=config, env=env, stdin=data)

    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1, result.stderr[-2000:]
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [int(line.split()[1].rstrip(":")) for line in reported] == MIXED_BAD, result.stderr
    assert "not UTF-8" in reported[0]
    assert "available_at" in reported[3]
    assert "loaded 3" in result.stdout
    assert await keys_in(dsn) == ["m1", "m3", "m8"]


async def test_a_file_that_opens_but_cannot_be_read_is_one_line_exit_2(
    dsn: str, tmp_path: Path
) -> None:
    """``/proc/self/mem`` opens, and its first read fails (EIO): one line, no traceback."""
    config = write_config(
        tmp_path / "c.toml",
        dsn,
        '[accounts.shop]\nprovider = "billclap"\nbase_url = "http://127.0.0.1:9"\ntoken = "t"',
    )
    result = cli("enqueue", "/proc/self/mem", config=config)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "invoice-sync: cannot read the input: Input/output error; lines before it may have "
        "loaded (enqueue again once it reads: lines already queued are skipped)"
    ]
