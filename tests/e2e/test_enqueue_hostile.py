"""``invoice-sync enqueue`` with a file of hostile lines: each bad line reported by number on
stderr, every good line loaded, exit code 1 (some lines were bad), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import cli, write_config
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
    config = write_config(tmp_path / "c.toml", dsn,
                          '[accounts.shop]\nprovider = "billclap"\nbase_url = "http://127.0.0.1:9"\n'
                          'token = "t"')  # fmt: skip
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
