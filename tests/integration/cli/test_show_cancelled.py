"""``invoice-sync cancel`` then ``invoice-sync show`` in-process against a real database: the
table and ``--json`` tell a cancelled key, its reason, when and by which login."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.factories import invoice
from worker.cli import config as configured
from worker.cli.main import main


def query(dsn: str, sql: str, *args: object) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def cli(dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs ``invoice-sync ARGS`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setenv("INVOICE_SYNC_DATABASE_URL", dsn)
    monkeypatch.delenv("INVOICE_SYNC_CONFIG", raising=False)
    # In-process: logging would keep writing to this test's captured stderr after it closes.
    monkeypatch.setattr(configured, "configure_logging", lambda **_: None)

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_show_tells_a_cancelled_key(dsn: str, cli: Any, tmp_path: Path) -> None:
    query(
        dsn,
        "SELECT invoice_sync.enqueue('shop', 'order-1', $1::jsonb)",
        json.dumps(invoice(number="WEB-1")),
    )
    code, out, err = cli("cancel", "shop", "order-1", "--reason", "order refunded")
    assert (code, out.strip()) == (0, "shop order-1: cancelled"), err
    [(outbox_id, cancelled_by)] = query(
        dsn, "SELECT outbox_id, cancelled_by FROM invoice_sync.cancelled"
    )

    code, out, err = cli("show", "shop", "order-1", "--json")
    assert code == 0, err
    story = json.loads(out)
    assert (story["state"], story["outbox_id"], story["reason"], story["cancelled_by"]) == (
        "cancelled",
        outbox_id,
        "order refunded",
        cancelled_by,
    )
    assert story["next_attempt_at"] is None

    code, out, err = cli("show", "shop", "order-1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].startswith("state:")
    assert "cancelled since" in lines[2]
    assert "reason:         order refunded" in lines
    assert f"cancelled by:   {cancelled_by}" in lines
    assert "no attempts recorded" in out
