"""The daemon runs as the worker role and syncs what a producer login enqueued."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, cli, get_json, sandbox, write_config
from tests.factories import invoice
from tests.integration.store.roles.access import Logins, connected


def account(url: str) -> str:
    return "\n".join(
        [
            "[accounts.shop]",
            'provider = "billclap"',
            f'base_url = "{url}"',
            f'token = "{TOKEN}"',
            'rate_limit = "2000/second"',
            "concurrency = 8",
        ]
    )


@pytest.mark.e2e
async def test_the_daemon_runs_as_the_worker_and_syncs_what_the_producer_enqueued(
    dsn: str, logins: Logins, tmp_path: Path
) -> None:
    async def produce(conn: asyncpg.Connection) -> None:
        for i in range(20):
            body = json.dumps(invoice(number=f"RP-{i}"))
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)", f"rp-{i}", body
            )

    await connected(logins.producer, produce)
    bulk = "".join(
        json.dumps(
            {"account": "shop", "idempotency_key": f"rb-{i}", "payload": invoice(number=f"RB-{i}")}
        )
        + "\n"
        for i in range(10)
    )
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(tmp_path / "worker.toml", logins.worker, account(url))
        loaded = cli("enqueue", "-", config=config, stdin=bulk)
        assert loaded.returncode == 0, loaded.stderr
        assert cli("accounts", "pause", "shop", config=config).returncode == 0
        assert cli("accounts", "resume", "shop", config=config).returncode == 0
        run = cli("run", "--drain", config=config, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        created = get_json(url + "/_sandbox/created")["created"]
        status = cli("status", "--json", config=config)
        assert status.returncode == 0, status.stderr

    assert len(created) == 30
    assert json.loads(status.stdout)["accounts"]["shop"]["synced"] == 30
    # The worker role announced the account it works (the KEDA query and `status` read it).
    assert json.loads(status.stdout)["accounts"]["shop"]["configured"] is True
    producer_view = await connected(
        logins.producer,
        lambda c: c.fetch("SELECT idempotency_key, provider_invoice_id FROM invoice_sync.synced"),
    )
    assert len(producer_view) == 30
    assert (
        await connected(
            logins.producer, lambda c: c.fetchval("SELECT count(*) FROM invoice_sync.outbox")
        )
        == 0
    )
