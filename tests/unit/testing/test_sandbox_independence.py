"""A sandbox never imports the adapter it checks: a fake that shares code with what it checks
hides the bugs they share. Where the two must agree, these tests compare them instead."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import worker.testing.sandbox
from worker.providers.base import MESSAGE_LIMIT, RESPONSE_LIMIT
from worker.providers.billit.mapping import tag_for
from worker.testing.sandbox import PROFILES, hostile

SANDBOX = Path(worker.testing.sandbox.__file__).parent


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_sandbox_module_imports_the_providers() -> None:
    sources = sorted(SANDBOX.rglob("*.py"))
    assert len(sources) > 10
    offenders = {
        str(source.relative_to(SANDBOX)): sorted(
            name
            for name in _imported_modules(source)
            if name.split(".")[:2] == ["worker", "providers"]
        )
        for source in sources
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_loading_every_sandbox_loads_no_provider_code() -> None:
    script = (
        "import importlib, pkgutil, sys\n"
        "import worker.testing.sandbox as sandbox\n"
        "for info in pkgutil.walk_packages(sandbox.__path__, 'worker.testing.sandbox.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('worker.providers')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_echo_straddles_the_worker_s_own_cut_edges() -> None:
    assert (hostile.MESSAGE_CUT, hostile.RESPONSE_CUT) == (MESSAGE_LIMIT, RESPONSE_LIMIT)


@pytest.mark.parametrize("key", ["order-77", "a/b@c:d+e.f_g", "x" * 64])
def test_the_billit_sandbox_reads_back_the_key_the_adapter_tags(key: str) -> None:
    assert PROFILES["billit"].identity({"tags": ["other", tag_for(key)]}) == key


@pytest.mark.parametrize("key", ["x" * 65, "order 77", "sha256:abc"])
def test_the_billit_sandbox_cannot_read_a_hashed_key(key: str) -> None:
    assert tag_for(key).startswith("invoice-sync:sha256:")
    assert PROFILES["billit"].identity({"tags": [tag_for(key)]}) is None
