"""`invoice-sync show ACCOUNT KEY` as a subprocess: a key dead-lettered, replayed with a
corrected payload and synced tells both attempts, across both outbox rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.processes import TOKEN, cli, sandbox, write_config
from tests.e2e.test_dlq_cli import account, enqueue_raw
from tests.factories import invoice

pytestmark = pytest.mark.e2e


async def test_show_tells_a_replayed_invoice_s_whole_story(dsn: str, tmp_path: Path) -> None:
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(tmp_path / "c.toml", dsn, account(url))
        await enqueue_raw(dsn, "order-1", invoice(number="order-1", lines=[]))
        assert cli("run", "--drain", config=config).returncode == 0
        dead = json.loads(cli("show", "shop", "order-1", "--json", config=config).stdout)
        assert (dead["state"], [a["outcome"] for a in dead["attempts"]]) == (
            "dead",
            ["dead_letter"],
        )
        fixed = tmp_path / "fixed.json"
        fixed.write_text(json.dumps(invoice(number="order-1")))
        replay = cli(
            "dlq", "replay", str(dead["outbox_id"]), "--payload", str(fixed), config=config
        )
        assert replay.returncode == 0, replay.stderr
        assert cli("run", "--drain", config=config).returncode == 0

        shown = cli("show", "shop", "order-1", "--json", config=config)
        assert shown.returncode == 0, shown.stderr
        story = json.loads(shown.stdout)
        assert story["state"] == "synced"
        assert story["provider_invoice_id"]
        assert len(story["history"]) == 2
        told = [(a["outbox_id"], a["outcome"], a["reason"]) for a in story["attempts"]]
        assert told == [
            (story["history"][0], "dead_letter", "invalid_payload"),
            (story["history"][1], "synced", None),
        ]
        assert 200 <= story["attempts"][1]["http_status"] < 300

        table = cli("show", "shop", "order-1", config=config)
        assert table.returncode == 0, table.stderr
        assert "synced since" in table.stdout
        assert "dead_letter" in table.stdout
        assert story["provider_invoice_id"] in table.stdout

        unknown = cli("show", "shop", "no-such-key", config=config)
        assert unknown.returncode == 2
        assert unknown.stderr.strip().count("\n") == 0
        assert "no invoice with key 'no-such-key'" in unknown.stderr
