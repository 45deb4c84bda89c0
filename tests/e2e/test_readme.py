"""Every command in README.md runs here, so the README cannot go stale.

The convention: in fenced ```console blocks, lines starting with ``$ `` are commands. A fenced
block whose info string says ``file=NAME`` (```toml file=invoice-sync.toml) is a file the
commands after it use; it is written to the working directory. ```sql blocks are run against
the database. Blocks run in document order, with this small mapping for what a reader would
supply themselves:

- **Quick start** runs as written in a fresh copy of the repository: a new virtual environment,
  ``pip install '.[demo]'``, then the demo (``test_quick_start_from_a_fresh_copy``).
- **Tests** (``python -m pytest``) is the command ``.ci/run`` runs, and this test is part of that
  run: it is checked to be exactly ``.ci/run``'s command rather than run inside itself.
- Everything else runs in a temporary directory with ``invoice-sync`` from this environment on
  ``PATH`` and the environment a reader would set: ``INVOICE_SYNC_DATABASE_URL`` (this test's
  database, overriding the file's ``database_url``), the example accounts' secrets
  (``BILLCLAP_TOKEN``, ``REFRENS_APP_SECRET``, ``BILLIT_TOKEN``), and the ``shop``
  account's ``base_url`` pointed at a local BillClap sandbox (``INVOICE_SYNC_ACCOUNTS__SHOP__
  BASE_URL``). Every ```toml block must load as a config.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.processes import TOKEN, processes_mentioning, sandbox
from worker.config import load_settings
from worker.engine.runtimes import check_accounts

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Block:
    section: str
    lang: str
    info: str
    body: str

    @property
    def commands(self) -> list[str]:
        return [line[2:] for line in self.body.splitlines() if line.startswith("$ ")]

    @property
    def file(self) -> str | None:
        match = re.search(r"file=(\S+)", self.info)
        return match.group(1) if match else None


def readme_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = [(m.start(), m.group(2)) for m in HEADING.finditer(text)]
    blocks = []
    for match in FENCE.finditer(text):
        section = next((h for pos, h in reversed(headings) if pos < match.start()), "")
        blocks.append(Block(section, match.group(1), match.group(2).strip(), match.group(3)))
    return blocks


def shell(
    command: str, *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """One README command as a reader's shell runs it (redirections, ``&&``)."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def section(name: str) -> list[Block]:
    return [b for b in readme_blocks() if b.section == name]


def test_the_readme_has_two_quick_start_commands_and_one_test_command() -> None:
    quick = [c for b in section("Quick start") for c in b.commands]
    assert len(quick) == 2
    assert "pip install '.[demo]'" in quick[0]
    assert quick[1].endswith("invoice-sync demo")
    tests = [c for b in section("Tests") for c in b.commands]
    assert tests == ["python -m pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests[0] in [line.strip() for line in ci]  # the very command CI runs


def test_quick_start_from_a_fresh_copy() -> None:
    work = Path(tempfile.mkdtemp(prefix="isr-", dir="/tmp"))
    work.chmod(0o755)
    try:
        repo = work / "invoice-sync"
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for name in listed:
            if (ROOT / name).is_file():
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, repo / name)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INVOICE_SYNC_", "VIRTUAL_ENV", "PYTHONPATH"))
        }
        env.update(TMPDIR=str(work), PATH=_path_without_venvs())
        install, demo = [c for b in section("Quick start") for c in b.commands]
        installed = shell(install, cwd=repo, env=env, timeout=600)
        assert installed.returncode == 0, installed.stderr[-3000:]
        ran = shell(demo, cwd=repo, env=env, timeout=300)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert "Synced per account" in ran.stdout
        assert "invoices/s" in ran.stdout
        assert processes_mentioning(work) == []
        assert list(work.glob("invoice-sync-demo-*")) == []
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _path_without_venvs() -> str:
    """PATH without this test run's virtual environment: the quick start makes its own."""
    here = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != here)


async def test_every_other_command_runs(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The secrets a reader would export for the example accounts.
    for name in ("BILLCLAP_TOKEN", "REFRENS_APP_SECRET", "BILLIT_TOKEN"):
        monkeypatch.setenv(name, TOKEN)
    skipped = {"Quick start", "Tests"}
    blocks = [b for b in readme_blocks() if b.section not in skipped]
    assert any(b.commands for b in blocks)
    assert any(b.lang == "sql" for b in blocks)
    ran = 0
    with sandbox("billclap", "--token", TOKEN) as url:
        env = {
            **os.environ,
            "INVOICE_SYNC_DATABASE_URL": dsn,
            "BILLCLAP_TOKEN": TOKEN,
            "INVOICE_SYNC_ACCOUNTS__SHOP__BASE_URL": url,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
        }
        for block in blocks:
            if block.lang == "toml":  # every config shown must load, placeholders and all
                shown = tmp_path / (block.file or "shown.toml")
                shown.write_text(block.body, encoding="utf-8")
                check_accounts(load_settings(shown))
            elif block.file is not None:
                (tmp_path / block.file).write_text(block.body, encoding="utf-8")
            elif block.lang == "sql":
                conn = await asyncpg.connect(dsn)
                try:
                    await conn.execute(block.body)
                finally:
                    await conn.close()
            for command in block.commands:
                result = shell(command, cwd=tmp_path, env=env, timeout=120)
                assert result.returncode == 0, (command, result.stdout, result.stderr[-2000:])
                ran += 1
    assert ran >= 5
    conn = await asyncpg.connect(dsn)
    try:  # the README's two invoices (SQL and JSON Lines) were really created
        keys = {r["idempotency_key"] for r in await conn.fetch("SELECT * FROM invoice_sync.synced")}
    finally:
        await conn.close()
    assert keys == {"order-2026-000123", "order-1"}
