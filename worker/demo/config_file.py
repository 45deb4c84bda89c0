"""The config the demo runs with, written as an ordinary ``--config`` TOML file.

The demo loads it back through ``load_settings``, the same path every other command takes, so
the file it prints is exactly what it ran with, and a user can reuse it (``status``, ``dlq``)
or copy it as the start of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from worker.config import Settings, load_settings
from worker.demo.plan import DemoAccount
from worker.demo.stack import open_private

# Tuned for a short run against local sandboxes: quick retries, a client timeout that a
# commit-then-stall outlasts, and a cool-down long enough that a paused account stays paused.
WORKER = {
    "batch_size": 200,
    "poll_interval": "1s",
    "lease": "30s",
    "shutdown_grace": "5s",
    "base_retry_delay": "200ms",
    "max_retry_delay": "2s",
    "flush_interval": "50ms",
    "pause_cooldown": "1h",
}
HTTP = {"connect_timeout": "2s", "request_timeout": "2s"}
RATE_LIMIT = "1000/second"
CONCURRENCY = 16


def write_config(
    path: Path,
    *,
    database_url: str,
    accounts: Sequence[tuple[DemoAccount, str]],
    header: str,
    console: Mapping[str, str],
) -> Settings:
    """Write the demo's config (``accounts``: each account with its sandbox URL; ``console``:
    its ``[console]`` keys) and load it back; ``ConfigError`` if a profile's account keys do
    not validate."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"database_url = {_value(database_url)}", "", "[worker]"]
    lines += [f"{key} = {_value(value)}" for key, value in WORKER.items()]
    lines += ["", "[http]"]
    lines += [f"{key} = {_value(value)}" for key, value in HTTP.items()]
    # Any free port for /metrics: the demo must not collide with a worker already serving
    # the default 9464 on this machine.
    lines += ["", "[observe]", 'log_format = "json"', 'listen = "127.0.0.1:0"']
    lines += ["", "[console]"]
    lines += [f"{key} = {_value(value)}" for key, value in console.items()]
    for account, url in accounts:
        profile = account.profile
        entries: dict[str, Any] = {
            "provider": profile.provider,
            "base_url": url,
            "token": profile.token,
            "rate_limit": RATE_LIMIT,
            "concurrency": CONCURRENCY,
            **profile.account,
        }
        lines += ["", f"[accounts.{account.name}]"]
        lines += [f"{key} = {_value(value)}" for key, value in entries.items()]
    with open_private(path) as file:
        file.write("\n".join(lines) + "\n")
    # Not the environment's INVOICE_SYNC_ overrides: they are a deployment's, not the demo's.
    return load_settings(path, environment=False)


def _value(value: Any) -> str:
    """A TOML literal for the simple values a config holds (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the demo config")
