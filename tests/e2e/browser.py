"""Headless Chromium for the console's e2e tests: Debian's ``chromium`` driven by Playwright,
an axe-core accessibility check, and screenshots kept as test artifacts.

Playwright rather than Selenium: it speaks the DevTools protocol to the browser itself, so
Debian's ``/usr/bin/chromium`` is all it needs (``executable_path``; ``playwright install`` and
its browser downloads are never used), it waits for elements and navigations on its own (no
sleeps, no flaky waits), and its request API posts with the page's own cookies, which is how a
forged form is sent. axe-core's script comes from the ``axe-playwright-python`` wheel (a test
extra), read as a file and evaluated in the page; nothing of it is committed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# What works in a container as root without a display or a network beyond loopback.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
"""Screenshots of every page the browser test opens (gitignored; CI may keep them)."""
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium with a fresh profile (Playwright gives each launch a new
    user-data-dir and removes it afterwards); each test opens its own context (cookies) in it."""
    assert CHROMIUM.is_file(), (
        f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (.ci/run does)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> Page:
    """A page in a context of its own (no cookies shared with another test), failing fast."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    return context.new_page()


def axe_script() -> str:
    """axe-core's minified script, as the ``axe-playwright-python`` wheel ships it."""
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on ``page`` as it is now, one line each
    (rule, impact, the first offending element): empty when the page passes."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_script())
    results: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}"
        for v in results["violations"]
        if v["impact"] in BLOCKING_IMPACTS
    ]


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``test-artifacts/console/NAME.png``; its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=path, full_page=True)
    return path
