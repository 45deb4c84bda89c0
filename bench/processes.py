"""The processes a scenario starts: the sandbox, daemons, the CLI; and their configuration."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

TOKEN = "bench-token-7c1e"
# Every engine a bench runs (daemons, replicas, the in-process one) takes a free port for
# /metrics and the probes: beside another daemon or bench, the default 9464 may be taken.
FREE_PORT = "127.0.0.1:0"


@contextlib.contextmanager
def sandbox(*flags: str) -> Iterator[str]:
    """``bench.sandbox_process`` in its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sandbox_process", "--token", TOKEN, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(
                f"sandbox did not start: {line} {process.stderr.read() if process.stderr else ''}"
            )
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.communicate(timeout=15)


# Accounts whose adapter never sends (the instant provider, enqueue-only runs) still need a
# base_url that passes the config's check: loopback, the discard port.
def account_toml(
    *,
    provider: str,
    url: str = "http://127.0.0.1:9",
    rate: str,
    concurrency: int,
    name: str = "bench",
) -> str:
    lines = [
        f"[accounts.{name}]",
        f'provider = "{provider}"',
        f'base_url = "{url}"',
        f'rate_limit = "{rate}"',
        f"concurrency = {concurrency}",
    ]
    if provider == "billclap":
        lines.append(f'token = "{TOKEN}"')
    return "\n".join(lines)


def write_config(
    path: Path, dsn: str, account: str, *, log_level: str = "warning", **worker: str
) -> Path:
    """A daemon config: the product's defaults except what ``worker`` overrides."""
    lines = [f'database_url = "{dsn}"', "[worker]"]
    lines += [f"{k} = {v}" for k, v in worker.items()]
    lines += [
        "[observe]",
        'log_format = "json"',
        f'log_level = "{log_level}"',
        f'listen = "{FREE_PORT}"',
        account,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def daemon(
    config: Path, *, module: str = "worker", drain: bool = False, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m MODULE --config C run``: ``worker`` is the product CLI, ``bench.daemon`` the
    same CLI with the instant provider registered."""
    command = [sys.executable, "-m", module, "--config", str(config), "run"]
    if drain:
        command.append("--drain")
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def peak_rss_kb(pid: int) -> int | None:
    """The process's resident high-water mark so far (``VmHWM``), or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None
