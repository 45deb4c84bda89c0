"""deploy/systemd: the units pass `systemd-analyze verify` without a warning, their exposure
score is the one docs/operations.md records, and they keep the daemon's shutdown contract."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import systemd_analyze
from worker.config import WorkerSettings, load_settings
from worker.durations import parse_duration
from worker.engine.runtimes import check_accounts

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/invoice-sync/bin/invoice-sync"
EXPOSURE_LIMIT = 2.0


def directives(unit: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> every value given, in order (systemd keys may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units with ExecStart pointing at this venv's invoice-sync instead of /opt.

    verify checks that the command exists and is executable; the test does not install into
    /opt, so it points the same units at the script pip installed here. Nothing else changes.
    """
    script = Path(sys.executable).parent / "invoice-sync"
    assert script.exists(), script
    target = tmp_path_factory.mktemp("units")
    for unit in UNITS.glob("*.service"):
        text = unit.read_text(encoding="utf-8")
        assert text.count(INSTALLED) == 1, unit
        (target / unit.name).write_text(text.replace(INSTALLED, str(script)), encoding="utf-8")
    return target


def test_units_verify_without_warnings(units: Path) -> None:
    result = subprocess.run(
        [str(systemd_analyze()), "verify", *sorted(str(u) for u in units.glob("*.service"))],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # verify reports unknown keys and bad values on stderr but still exits 0.
    assert result.stdout + result.stderr == ""


def exposure(unit: Path) -> float:
    result = subprocess.run(
        [str(systemd_analyze()), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@pytest.mark.parametrize("name", ["invoice-sync.service", "invoice-sync-migrate.service"])
def test_exposure_is_low_and_the_one_the_docs_record(units: Path, name: str) -> None:
    score = exposure(units / name)
    assert score <= EXPOSURE_LIMIT
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert f"`{name}`: exposure **{score}**" in doc


def test_the_daemon_stops_gracefully_within_the_stop_timeout() -> None:
    unit = directives(UNITS / "invoice-sync.service")
    assert unit["Service.ExecStart"] == [f"{INSTALLED} run"]
    assert unit["Service.KillSignal"] == ["SIGTERM"]
    assert unit["Service.Restart"] == ["on-failure"]
    grace = WorkerSettings().shutdown_grace
    assert parse_duration(unit["Service.TimeoutStopSec"][0]) >= grace + 10
    assert unit["Service.DynamicUser"] == ["yes"]
    assert unit["Service.ProtectSystem"] == ["strict"]
    assert unit["Service.CapabilityBoundingSet"] == [""]
    assert "invoice-sync-migrate.service" in unit["Unit.Requires"]
    assert "invoice-sync-migrate.service" in " ".join(unit["Unit.After"])


def test_migrations_run_once_before_the_daemon_as_the_owner() -> None:
    unit = directives(UNITS / "invoice-sync-migrate.service")
    assert unit["Service.Type"] == ["oneshot"]
    assert unit["Service.ExecStart"] == [f"{INSTALLED} migrate"]
    assert unit["Service.EnvironmentFile"][-1] == "/etc/invoice-sync/migrate.env"


def test_the_env_example_configures_the_example_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variable in the example, commented-out ones included, is a key the config knows."""
    example = (UNITS / "invoice-sync.env.example").read_text(encoding="utf-8")
    assignments = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(\S+)", example, flags=re.MULTILINE)
    assert "INVOICE_SYNC_DATABASE_URL" in dict(assignments)
    for name, value in assignments:
        monkeypatch.setenv(name, value)
    settings = load_settings(ROOT / "config" / "invoice-sync.example.toml")
    check_accounts(settings)  # the provider options too, as every command checks them
    assert settings.accounts["shop-billclap"].resolve_token() is not None
    assert settings.worker.shutdown_grace == 30.0
