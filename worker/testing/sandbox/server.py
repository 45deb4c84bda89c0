"""Running a sandbox: in-process for tests (``start_sandbox``) or from the CLI (``run_from_args``).

Sandboxes bind 127.0.0.1 by default: they accept any body and hold fake data, and nothing but
the local worker and tests should reach them. Port 0 asks the OS for a free port; the URL is
on the handle, and the CLI prints it as its one line of output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from worker.config import describe_config_error
from worker.testing.sandbox import SANDBOXES
from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.introspection import SandboxState

# A stalled handler sleeps far past any client timeout; stopping does not wait for it.
STOP_GRACE = 0.5


@dataclass(frozen=True, kw_only=True, slots=True)
class SandboxHandle:
    """A running sandbox: where it listens, its state, and how to stop it."""

    provider: str
    url: str
    port: int
    state: SandboxState
    app: web.Application
    _runner: web.AppRunner

    async def stop(self) -> None:
        """Stop listening and drop open connections (stalled answers are never sent)."""
        await self._runner.cleanup()


async def start_sandbox(
    provider: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultConfig | None = None,
    **options: Any,
) -> SandboxHandle:
    """Serve ``provider``'s sandbox on ``host:port``; ``ValueError`` for an unknown provider or
    a bad option, ``OSError`` when the address cannot be bound."""
    factory = SANDBOXES.get(provider)
    if factory is None:
        raise ValueError(f"no sandbox for {provider!r}; known: {', '.join(sorted(SANDBOXES))}")
    app = factory(faults=faults, **options)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_GRACE)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return SandboxHandle(
        provider=provider,
        url=f"http://{shown}:{bound}",
        port=bound,
        state=SandboxState(app),
        app=app,
        _runner=runner,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, from the arguments ``invoice-sync sandbox`` parsed (one
    per ``FaultConfig`` field among them); 0 on a clean stop, 2 for bad options, 1 if not bound."""
    given = {field.name: getattr(args, field.name, None) for field in fields(FaultConfig)}
    try:
        faults = FaultConfig(**{name: value for name, value in given.items() if value is not None})
        options = options_from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"invoice-sync sandbox: {exc}\n")
        return 2
    return asyncio.run(_serve(args.provider, args.host, args.port, faults, options))


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Provider options from ``--token``, ``--credits`` and ``--option KEY=JSON``."""
    options: dict[str, Any] = {}
    if args.token:
        options["tokens"] = list(args.token)
    if args.credits is not None:
        options["credits"] = args.credits
    for item in args.option:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=JSON")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw  # a bare word is a string: --option prefix=WEB-
    return options


async def _serve(
    provider: str, host: str, port: int, faults: FaultConfig, options: dict[str, Any]
) -> int:
    try:
        handle = await start_sandbox(provider, host=host, port=port, faults=faults, **options)
    except ValidationError as exc:
        sys.stderr.write(f"invoice-sync sandbox: {describe_config_error(exc, 'option')}\n")
        return 2
    except ValueError as exc:
        sys.stderr.write(f"invoice-sync sandbox: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"invoice-sync sandbox: cannot listen on {host}:{port}: {exc}\n")
        return 1
    await serve_until_signalled(handle, f"{provider} sandbox listening on {handle.url}")
    return 0


async def serve_until_signalled(handle: SandboxHandle, announce: str) -> None:
    """Print ``announce`` (the line a parent process waits for), serve until SIGINT or
    SIGTERM, then stop the sandbox."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(announce + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await handle.stop()
