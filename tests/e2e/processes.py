"""Running the real CLI as subprocesses: the sandbox, the daemon, the operator commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOKEN = "e2e-secret-token-4b1d"


def cli(
    *args: str,
    config: Path | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker"]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=stdin,
        check=False,
    )


def cli_bytes(
    args: list[str],
    *,
    config: Path,
    stdin: bytes,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``cli`` with standard input given as bytes (which need not be UTF-8)."""
    command = [sys.executable, "-m", "worker", "--config", str(config), *args]
    done = subprocess.run(
        command,
        capture_output=True,
        timeout=timeout,
        input=stdin,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )


@contextmanager
def sandbox(provider: str, *flags: str) -> Iterator[str]:
    """A sandbox process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "sandbox", "--provider", provider, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, (line, process.stderr.read() if process.stderr else "")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reads and closes both pipes


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.loads(response.read())


def write_config(path: Path, dsn: str, accounts: str, **worker: str) -> Path:
    settings = {
        "poll_interval": '"500ms"',
        "base_retry_delay": '"50ms"',
        "max_retry_delay": '"500ms"',
        "flush_interval": '"20ms"',
        "lease": '"30s"',
        "pause_cooldown": '"1h"',
    }
    settings.update(worker)
    lines = [f'database_url = "{dsn}"', "[worker]"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    # Port 0: several daemons of one test each get a free port for /metrics and the probes.
    lines += [
        "[http]",
        'request_timeout = "1s"',
        "[observe]",
        'log_format = "json"',
        'listen = "127.0.0.1:0"',
        accounts,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def processes_mentioning(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (e.g. a postgres serving a data dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found
