"""``invoice-sync enqueue`` and the 256 KiB payload limit: an oversize line is reported by its
number on stderr, the other lines load, exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import cli, write_config
from tests.factories import invoice

pytestmark = pytest.mark.e2e


def line(key: str, **changes: object) -> str:
    return json.dumps(
        {"account": "shop", "idempotency_key": key, "payload": invoice(key, **changes)}
    )


async def test_an_oversize_line_is_refused_by_number_and_the_rest_load(
    dsn: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        dsn,
        '[accounts.shop]\nprovider = "billclap"\nbase_url = "http://127.0.0.1:9"\ntoken = "t"',
    )
    described = {"name": "item", "description": "d" * 300, "quantity": 1, "unit_price": 1}
    path = tmp_path / "invoices.jsonl"
    path.write_text(
        "\n".join([line("a"), line("big", lines=[described] * 1000), line("b")]) + "\n",
        encoding="utf-8",
    )
    result = cli("enqueue", str(path), config=config)

    assert result.returncode == 1, result.stderr[-2000:]
    (reported,) = result.stderr.splitlines()
    assert reported.startswith("line 2: payload: ")
    assert reported.endswith("bytes of JSON, over the limit of 262144 (256 KiB)")
    conn = await asyncpg.connect(dsn)
    try:
        keys = [r[0] for r in await conn.fetch("SELECT idempotency_key FROM invoice_sync.outbox")]
    finally:
        await conn.close()
    assert sorted(keys) == ["a", "b"]
