"""Provider-neutral e2e set-up: one sandbox process and one account per registered profile, and
a fleet of ``invoice-sync run`` replicas that can be killed and restarted.

Nothing here names a provider: sandboxes, tokens and account keys come from
``worker.testing.sandbox.PROFILES``, so a provider that registers a profile joins every test built on
this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.processes import get_json
from tests.factories import invoice
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.profile import SandboxProfile


def profiles() -> list[SandboxProfile]:
    return [PROFILES[name] for name in sorted(PROFILES)]


def account_name(profile: SandboxProfile) -> str:
    return f"acct-{profile.provider}"


def option_flags(options: Mapping[str, Any]) -> list[str]:
    """A profile's sandbox start options as ``--option KEY=JSON`` flags."""
    flags: list[str] = []
    for key, value in options.items():
        flags += ["--option", f"{key}={json.dumps(value)}"]
    return flags


def swap_token(value: Any, old: str, new: str) -> Any:
    """``value`` with every string equal to ``old`` replaced by ``new`` (nested lists/dicts):
    a profile's start options made to accept a token of the test's choosing."""
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, Mapping):
        return {k: swap_token(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [swap_token(v, old, new) for v in value]
    return value


@dataclass(kw_only=True)
class Sandbox:
    profile: SandboxProfile
    url: str
    process: subprocess.Popen[str]

    def created(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = get_json(self.url + "/_sandbox/created")["created"]
        return records

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = get_json(self.url + "/_sandbox/stats")
        return stats

    def change(self, changes: Mapping[str, Any]) -> None:
        """``POST /_sandbox/state``: switch faults or provider options while it runs."""
        request = urllib.request.Request(  # loopback only
            self.url + "/_sandbox/state",
            data=json.dumps(changes).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


@contextlib.contextmanager
def sandboxes(
    faults: list[str], *, tokens: Mapping[str, str] | None = None
) -> Iterator[dict[str, Sandbox]]:
    """One sandbox process per profile, keyed by provider. ``tokens`` maps a provider to the
    token its sandbox should accept instead of the profile's own."""
    with contextlib.ExitStack() as stack:
        running: dict[str, Sandbox] = {}
        for profile in profiles():
            options: Mapping[str, Any] = profile.options
            if tokens and profile.provider in tokens:
                options = swap_token(options, profile.token, tokens[profile.provider])
            running[profile.provider] = stack.enter_context(
                sandbox(profile, [*option_flags(options), *faults])
            )
        yield running


@contextlib.contextmanager
def sandbox(profile: SandboxProfile, flags: list[str]) -> Iterator[Sandbox]:
    """One sandbox process for ``profile`` started with ``flags`` (options and faults)."""
    command = [
        sys.executable,
        "-m",
        "worker",
        "sandbox",
        "--provider",
        profile.provider,
        "--port",
        "0",
        *flags,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, (line, process.stderr.read() if process.stderr else "")
        yield Sandbox(profile=profile, url=line.rsplit(" ", 1)[-1].strip(), process=process)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def account_block(
    profile: SandboxProfile,
    url: str,
    *,
    name: str | None = None,
    token_line: str | None = None,
    rate_limit: str = "5000/second",
    concurrency: int = 16,
) -> str:
    """The ``[accounts.NAME]`` TOML for a profile's sandbox (``NAME`` defaults to
    ``account_name``); ``token_line`` replaces ``token = "<profile token>"`` (e.g. with
    ``token_env = "..."``)."""
    lines = [
        f"[accounts.{name or account_name(profile)}]",
        f'provider = "{profile.provider}"',
        f'base_url = "{url}"',
        token_line or f"token = {json.dumps(profile.token)}",
        f'rate_limit = "{rate_limit}"',
        f"concurrency = {concurrency}",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in profile.account.items()]
    return "\n".join(lines)


def invoices_jsonl(
    count: int,
    prefix: str,
    *,
    numberless_every: int = 0,
    accounts: Sequence[tuple[str, SandboxProfile]] | None = None,
) -> tuple[str, dict[str, tuple[str, dict[str, Any]]]]:
    """``count`` outbox rows spread over ``accounts`` (default: every profile's account), as
    JSON Lines, and each key's (account, payload). Every ``numberless_every``-th invoice has no
    number (0: all have one)."""
    targets = accounts or [(account_name(p), p) for p in profiles()]
    lines, payloads = [], {}
    for i in range(count):
        account, profile = targets[i % len(targets)]
        key = f"{prefix}-{i:06d}"
        numbered = not (numberless_every and i % numberless_every == numberless_every - 1)
        payload = invoice(number=key if numbered else None)
        # Shops' totals differ; identical ones would make every invoice a candidate in a
        # provider's tag scan (Billit), which no real outbox looks like.
        payload["lines"][0]["unit_price"] = 100 + i
        payload["provider_options"] = profile.sample_options(i)
        payloads[key] = (account, payload)
        row = {"account": account, "idempotency_key": key, "payload": payload}
        lines.append(json.dumps(row))
    return "\n".join(lines) + "\n", payloads


@dataclass(kw_only=True)
class Replica:
    index: int
    process: subprocess.Popen[bytes]
    log_dir: Path
    starts: int = 1


@dataclass(kw_only=True)
class Fleet:
    """``size`` ``invoice-sync run`` daemons; each start's stdout/stderr go to their own files."""

    config: Path
    log_dir: Path
    size: int
    env: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    kills: int = 0
    died: list[str] = field(default_factory=list)
    """Replica starts that exited on their own (not killed by us), with their exit codes."""

    def start(self) -> None:
        self.replicas = [self._spawn(i, 1) for i in range(self.size)]

    def _spawn(self, index: int, start: int) -> Replica:
        out = (self.log_dir / f"replica{index}.{start}.out").open("wb")
        err = (self.log_dir / f"replica{index}.{start}.err").open("wb")
        with out, err:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker", "--config", str(self.config), "run"],
                stdout=out,
                stderr=err,
                env={**os.environ, **self.env},
            )
        return Replica(index=index, process=process, log_dir=self.log_dir, starts=start)

    def kill_and_restart(self, index: int) -> None:
        """SIGKILL one replica (no grace, nothing flushed) and start a fresh one in its place."""
        old = self.replicas[index]
        if old.process.poll() is not None:
            self.died.append(f"replica{index}.{old.starts}: exit {old.process.returncode}")
        old.process.send_signal(signal.SIGKILL)
        old.process.wait(timeout=10)
        self.kills += 1
        self.replicas[index] = self._spawn(index, old.starts + 1)

    def wait_started(self, timeout: float = 60) -> None:
        """Until every replica's current start has logged ``worker.started`` (its signal
        handlers are installed from then on)."""
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            out = self.log_dir / f"replica{replica.index}.{replica.starts}.out"
            while b'"worker.started"' not in out.read_bytes():
                assert replica.process.poll() is None, f"{out.name} exited while starting"
                assert time.monotonic() < deadline, f"{out.name} did not start"
                time.sleep(0.1)

    def alive(self) -> list[int]:
        return [r.index for r in self.replicas if r.process.poll() is None]

    def stop(self, timeout: float = 60) -> list[int | None]:
        """SIGTERM every replica and wait: their exit codes (None if one had to be killed)."""
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            try:
                codes.append(replica.process.wait(timeout=max(deadline - time.monotonic(), 1)))
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()
                codes.append(None)
        return codes

    def logs(self) -> dict[str, bytes]:
        """Every byte every replica start wrote, by file name."""
        return {p.name: p.read_bytes() for p in sorted(self.log_dir.glob("replica*"))}
