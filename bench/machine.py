"""What a run ran on: the machine, the versions, the command. Figures mean little without it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "invoice-sync",
    "asyncpg",
    "aiohttp",
    "aiolimiter",
    "pydantic",
    "pydantic-core",
    "structlog",
    "procrastinate",
    "pgqueuer",
    "psycopg",
    "psycopg-pool",
)


def _proc_field(path: str, key: str) -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(server_version: str, command: list[str]) -> dict[str, Any]:
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
            "ram": _proc_field("/proc/meminfo", "MemTotal"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
        },
        "versions": {
            "python": sys.version.split()[0],
            "postgres": server_version,
            **{name: _version(name) for name in PACKAGES},
        },
        "command": " ".join(command),
    }
