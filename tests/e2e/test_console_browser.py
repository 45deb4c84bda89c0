"""The web console as an operator uses it: headless Chromium (``tests/e2e/browser.py`` says why
Playwright) on ``invoice-sync console`` subprocesses, over a database a real daemon drained
against the BillClap sandbox, with dead letters among the rows.

One walk through the pages an operator needs (overview, search, an invoice's timeline, log in,
replay a dead letter with a reason, find it in the audit log), axe-core on every page (no
serious or critical violation), a screenshot of each under ``test-artifacts/console/``; and a
console without an admin credential, which shows no action and refuses a forged one.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.e2e.browser import accessibility_violations, chromium, new_page, screenshot
from tests.e2e.processes import TOKEN, cli, sandbox, write_config
from tests.factories import invoice
from worker.testing.postgres import admin, with_database

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "console-admin-token-for-e2e-7f3c"
SYNCED = 24
BAD_KEYS = ("bad-1", "bad-2", "bad-3")
# Producer input the console must show as text, never run: a script would open a dialog.
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
REPLAY_REASON = "customer sent the missing line"
CANCEL_REASON = "the customer withdrew the order"


@pytest.fixture(scope="module")
def drained(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database a daemon drained: ``SYNCED`` invoices at the sandbox and three
    ``invalid_payload`` dead letters (one carrying ``HOSTILE`` text)."""
    name = f"invoice_sync_console_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    dsn = with_database(server_dsn, name)
    work = tmp_path_factory.mktemp("console-data")
    with sandbox("billclap", "--token", TOKEN) as url:
        config = write_config(work / "daemon.toml", dsn, account_section(url))
        loaded = cli("enqueue", "-", config=config, stdin=good_lines())
        assert loaded.returncode == 0, loaded.stderr
        asyncio.run(enqueue_bad(dsn))
        drain = cli("run", "--drain", config=config, timeout=90)
        assert drain.returncode == 0, drain.stderr[-3000:]
    yield dsn
    asyncio.run(admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def account_section(url: str) -> str:
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


def good_lines() -> str:
    rows = [
        {"account": "shop", "idempotency_key": f"order-{n}", "payload": invoice(f"WEB-{n}")}
        for n in range(1, SYNCED + 1)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


async def enqueue_bad(dsn: str) -> None:
    """Payloads our own validation refuses (no lines), written as a producer's SQL could."""
    conn = await asyncpg.connect(dsn)
    try:
        for key in BAD_KEYS:
            payload = invoice(key, lines=[], customer={"name": HOSTILE})
            await conn.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)", key, json.dumps(payload)
            )
    finally:
        await conn.close()


@contextmanager
def console(config: Path) -> Iterator[str]:
    """``invoice-sync console`` on ``config``; yields the address it prints once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), "console"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://\S+/", line)
        assert found, (line, process.stderr.read() if process.stderr else "")
        yield found.group(0)
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "Traceback" not in err


def console_config(path: Path, dsn: str, *, token_file: Path | None) -> Path:
    lines = [f'database_url = "{dsn}"', "[console]", 'listen = "127.0.0.1:0"']
    if token_file is not None:
        lines.append(f'admin_token_file = "{token_file}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def browser(drained: str) -> Iterator[Browser]:
    """One Chromium for the module, launched after the database is filled (and closed before
    it is dropped): while Playwright's sync API runs its event loop, ``asyncio.run`` (which
    the database fixtures use) cannot start another, so the tests read the database with
    psycopg's blocking client."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def admin_console(drained: str, tmp_path: Path) -> Iterator[str]:
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    with console(console_config(tmp_path / "admin.toml", drained, token_file=token_file)) as url:
        yield url


@pytest.fixture
def read_only_console(drained: str, tmp_path: Path) -> Iterator[str]:
    with console(console_config(tmp_path / "read-only.toml", drained, token_file=None)) as url:
        yield url


class Walk:
    """One page at a time: each page it lands on is checked by axe and photographed."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check(self, name: str, heading: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_contain_text(heading)
        assert accessibility_violations(self.page) == [], name
        screenshot(self.page, name)
        assert self.dialogs == [], f"a script ran on {name}: {self.dialogs}"

    def nav(self, label: str) -> None:
        self.page.get_by_role("navigation").get_by_role("link", name=label).click()


def test_the_accessibility_check_finds_a_serious_violation(browser: Browser) -> None:
    """The check that passes the console's pages does look: a page without a title or a
    language, and an image without a text alternative, fails it."""
    page = new_page(browser)
    page.set_content("<html><body><img src='data:,'><p>x</p></body></html>")
    found = {line.split(" ")[0] for line in accessibility_violations(page)}
    assert {"document-title", "html-has-lang", "image-alt"} <= found


def test_an_operator_finds_an_invoice_replays_a_dead_letter_and_cancels_it(
    drained: str, admin_console: str, browser: Browser
) -> None:
    walk = Walk(new_page(browser))
    page = walk.page
    page.goto(admin_console)
    walk.check("overview", "Overview")
    expect(page.locator("main")).to_contain_text("shop")

    walk.nav("Invoices")
    page.get_by_label("Key, invoice number or provider id").fill("WEB-7")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table#invoices tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("synced")
    walk.check("invoices-search", "Invoices")
    rows.first.get_by_role("link", name="order-7").click()
    expect(page.locator("main")).to_contain_text("WEB-7")
    walk.check("invoice-timeline", "order-7")

    log_in(walk)
    walk.nav("Dead letters")
    expect(page.locator("main")).to_contain_text("invalid_payload")
    walk.check("dead-letters", "Dead letters")
    open_dead_letter(page, "bad-1")
    # The producer's markup is shown as text (JSON-escaped), never made into elements.
    expect(page.locator("pre.payload")).to_contain_text("onerror=alert(1)")
    expect(page.locator("main img, main script")).to_have_count(0)
    walk.check("dead-letter", "Dead letter")
    page.get_by_label("Reason (for the audit log)").first.fill(REPLAY_REASON)
    page.get_by_label("Corrected payload").fill(json.dumps(invoice("bad-1")))
    page.get_by_role("button", name="Replay").click()
    expect(page.locator("main")).to_contain_text("eplayed")
    walk.check("replayed", "eplayed")

    walk.nav("Audit")
    entry = page.locator("table#audit tbody tr").first
    expect(entry).to_contain_text("replay")
    expect(entry).to_contain_text("admin")
    expect(entry).to_contain_text(REPLAY_REASON)
    walk.check("audit", "Audit")
    walk.nav("Accounts")
    walk.check("accounts", "Accounts")

    stored = replay_state(drained, "bad-1")
    assert stored["outbox"] == 1  # back in the outbox, corrected
    assert stored["audit"] == [("admin", "replay", REPLAY_REASON)]

    # No daemon runs here, so the replayed row stays pending: cancel it from its page.
    cancel_from_its_page(walk, "bad-1")
    assert replay_state(drained, "bad-1") == {
        "outbox": 0,
        "audit": [("admin", "replay", REPLAY_REASON), ("admin", "cancel", CANCEL_REASON)],
    }


def cancel_from_its_page(walk: Walk, key: str) -> None:
    """Find the pending ``key``, cancel it with a reason, and see it cancelled."""
    page = walk.page
    walk.nav("Invoices")
    page.get_by_label("Key, invoice number or provider id").fill(key)
    page.get_by_role("button", name="Search").click()
    page.locator("table#invoices tbody tr").get_by_role("link", name=key).click()
    walk.check("invoice-pending", key)
    page.get_by_label("Reason (for the audit log; the producer reads it too)").fill(CANCEL_REASON)
    page.get_by_role("button", name="Cancel this invoice").click()
    expect(page.locator("#state")).to_have_text("cancelled")
    walk.check("cancelled", "Cancel")
    page.get_by_role("link", name="The invoice's page").click()
    expect(page.locator("main")).to_contain_text("cancelled since")
    expect(page.locator("main")).to_contain_text(CANCEL_REASON)
    walk.check("invoice-cancelled", key)


def open_dead_letter(page: Page, key: str) -> None:
    """From the dead-letter list: the row of ``key``, its id links to the dead letter."""
    row = page.locator("table#dead-letters tbody tr", has_text=key)
    row.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/dead-letters/\d+$"))


def log_in(walk: Walk) -> None:
    page = walk.page
    page.get_by_role("link", name="Log in").click()
    walk.check("login", "Log in")
    page.get_by_label("User").fill("admin")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("logged in as admin")).to_be_visible()
    assert ADMIN_TOKEN not in page.content()


def replay_state(dsn: str, key: str) -> dict[str, Any]:
    """How many corrected rows ``key`` has in the outbox, and the whole audit log."""
    with psycopg.connect(dsn) as conn:
        outbox = conn.execute(
            "SELECT count(*) FROM invoice_sync.outbox WHERE account = 'shop' "
            "AND idempotency_key = %s AND payload->'lines' <> '[]'::jsonb",
            (key,),
        ).fetchone()
        audit = conn.execute(
            "SELECT actor, action, reason FROM invoice_sync.audit ORDER BY id"
        ).fetchall()
    return {"outbox": outbox[0] if outbox else None, "audit": [tuple(r) for r in audit]}


def test_a_read_only_console_offers_no_action_and_refuses_a_forged_one(
    drained: str, read_only_console: str, browser: Browser
) -> None:
    walk = Walk(new_page(browser))
    page = walk.page
    page.goto(read_only_console + "dead-letters")
    expect(page.get_by_text("read-only console")).to_be_visible()
    open_dead_letter(page, "bad-2")
    walk.check("read-only-dead-letter", "Dead letter")
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)
    expect(page.get_by_role("link", name="Log in")).to_have_count(0)

    # What a crafted page or a script would send: the form's fields, straight to the action.
    action = page.url.split("?")[0].rstrip("/") + "/replay"
    forged = page.request.post(action, form={"reason": "forged", "csrf": "guess"})
    assert forged.status == 403
    stored = replay_state(drained, "bad-2")
    assert stored["outbox"] == 0
    assert all(reason != "forged" for _actor, _action, reason in stored["audit"])
