"""Fault injection for every sandbox: one aiohttp middleware in front of the provider's API routes.

The faults are the failures the worker must survive without losing or duplicating an invoice:

- ``latency`` (+ up to ``jitter``) seconds before each answer: slow providers, timeouts.
- ``error_rate``: HTTP 500 with a generic, non-business error; nothing is created.
- ``stall_rate``: commit-then-stall. The invoice IS created, then the answer waits
  ``stall_seconds`` (past the client's timeout): the unknown-outcome case that makes retries
  dangerous.
- ``reset_rate``: the connection is reset with no answer; nothing is created.
- ``rate429_rate``: HTTP 429 with ``Retry-After: retry_after``; nothing is created.
- ``limit_rate`` (requests/s, 0 = off) with ``limit_burst``: a token bucket over all API
  requests, answering 429 with the Retry-After until the next token, as a provider enforcing
  "R per second" does. Checked before the random faults, so it measures the client's pacing.

A hostile provider (``worker.testing.sandbox.hostile``) adds: ``redirect_rate`` (a ``307`` to
``redirect_to``), ``inflate_rate`` (after creating, a gzip body inflating to ``inflate_mib``
MiB), ``drip_rate`` (after creating, a body dripped for ``drip_seconds``) and ``echo_rate`` (a
500 echoing the request's credential where clients cut answers).

One uniform draw per request picks at most one of reset, 429, error, stall, redirect, inflate,
drip and echo, so the rates are probabilities that must add up to at most 1. The draw comes from a ``random.Random`` seeded with
``seed`` so a chaos run can be replayed. Introspection routes (``/_sandbox/``) never see faults.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from worker.testing.sandbox import hostile

INTROSPECTION_PREFIX = "/_sandbox/"
# New kinds go last, so a seeded run replays the same faults it did before they existed.
RATE_FIELDS = (
    "reset_rate",
    "rate429_rate",
    "error_rate",
    "stall_rate",
    "redirect_rate",
    "inflate_rate",
    "drip_rate",
    "echo_rate",
)
TEXT_FIELDS = ("seed", "redirect_to")


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultConfig:
    """What to inject; rates are probabilities per API request."""

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 30.0
    reset_rate: float = 0.0
    rate429_rate: float = 0.0
    retry_after: float = 1.0
    limit_rate: float = 0.0
    limit_burst: float = 1.0
    redirect_rate: float = 0.0
    redirect_to: str = ""
    """Base URL a redirect points to (the request's path and query are kept)."""
    inflate_rate: float = 0.0
    inflate_mib: float = 64.0
    drip_rate: float = 0.0
    drip_seconds: float = 30.0
    echo_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        target = self.redirect_to
        if target != "" and not (
            isinstance(target, str) and target.startswith(("http://", "https://"))
        ):
            raise ValueError(f"faults.redirect_to: must be an http(s) URL, got {target!r}")
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name not in TEXT_FIELDS and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"faults.{field.name}: must be a number >= 0, got {value!r}")
        if self.limit_burst < 1:
            raise ValueError("faults.limit_burst: must be at least 1")
        if any(getattr(self, name) > 1 for name in RATE_FIELDS):
            raise ValueError("faults: each rate must be between 0 and 1")
        if sum(getattr(self, name) for name in RATE_FIELDS) > 1:
            raise ValueError("faults: the rates add up to more than 1")

    def updated(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A copy with ``changes`` applied; ``ValueError`` names an unknown or invalid key."""
        known = {field.name for field in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"faults: unknown keys {', '.join(unknown)}")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The current fault config, its random source, and counts of what was injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = FaultConfig()
        self.injected: dict[str, int] = {}
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Replace the config; a new seed restarts the random sequence (replayable runs)."""
        # Not cryptographic: a reproducible sequence of coin flips is the point.
        self._rng = random.Random(config.seed)  # noqa: S311
        self.config = config
        self._tokens = config.limit_burst
        self._refilled = time.monotonic()

    def over_limit(self) -> float | None:
        """Take a token of the enforced rate; None when allowed, else seconds to the next."""
        rate = self.config.limit_rate
        if not rate:
            return None
        now = time.monotonic()
        self._tokens = min(self.config.limit_burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate

    def remaining(self) -> int:
        """Whole requests left in the enforced rate's bucket (for ``X-RateLimit-Remaining``)."""
        return max(0, math.floor(self._tokens))

    def reset_counts(self) -> None:
        self.injected = {}

    def pick(self) -> str | None:
        """The fault for this request (a ``RATE_FIELDS`` name without ``_rate``) or None."""
        draw, edge = self._rng.random(), 0.0
        for name in RATE_FIELDS:
            edge += getattr(self.config, name)
            if draw < edge:
                return name.removesuffix("_rate")
        return None

    def delay(self) -> float:
        jitter = self.config.jitter
        return self.config.latency + (self._rng.uniform(0, jitter) if jitter else 0.0)

    def count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1


FAULTS = web.AppKey("faults", Faults)
FaultBody = Callable[[int, str], Any]
FAULT_BODY: web.AppKey[FaultBody] = web.AppKey("fault_body")
"""How this provider words an injected 429 or 500: ``body(status, message)``, so a fault looks
like the provider's own error (a generic shape when the sandbox sets none)."""
INJECTED = web.RequestKey("injected_fault", str)
"""The fault injected into this request, for the request log."""


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inject the configured faults into API requests (see the module docstring)."""
    if request.path.startswith(INTROSPECTION_PREFIX):
        return await handler(request)
    faults = request.app[FAULTS]
    body = request.app.get(FAULT_BODY, _generic_body)
    wait = faults.over_limit()
    if wait is not None:
        faults.count("limited")
        request[INJECTED] = "limited"
        return _too_many_requests(wait, body)
    delay = faults.delay()
    if delay:
        faults.count("latency")
        await asyncio.sleep(delay)
    kind = faults.pick()
    if kind is not None:
        faults.count(kind)
        request[INJECTED] = kind
    answer = await _instead(kind, request, faults.config, body)
    if answer is not None:
        return answer
    response = await handler(request)
    # From here the handler has committed: the client never learns of it.
    return await _after_commit(kind, request, response, faults.config)


async def _instead(
    kind: str | None, request: web.Request, config: FaultConfig, body: FaultBody
) -> web.StreamResponse | None:
    """The answer of a fault that replaces the handler (nothing is created), or None."""
    if kind == "reset":
        return _reset(request)
    if kind == "rate429":
        return _too_many_requests(config.retry_after, body)
    if kind == "error":
        return web.json_response(body(500, "Internal Server Error"), status=500)
    if kind == "redirect":
        return hostile.redirect(request, config.redirect_to)
    if kind == "echo":
        return await hostile.echo(request)
    return None


async def _after_commit(
    kind: str | None, request: web.Request, response: web.StreamResponse, config: FaultConfig
) -> web.StreamResponse:
    """The handler's answer, or what a fault makes of it once the handler has committed."""
    if kind == "stall":
        await asyncio.sleep(config.stall_seconds)
    elif kind == "inflate":
        return hostile.inflate(response.status, config.inflate_mib)
    elif kind == "drip":
        return await hostile.drip(request, config.drip_seconds)
    return response


def _reset(request: web.Request) -> web.StreamResponse:
    """Abort the connection with a TCP reset: the client gets no status line at all.

    The returned response is never written: aiohttp finds the transport closed, treats it as
    a client disconnect and drops the connection quietly.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0 turns close() into a RST instead of an orderly FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=500)


def _generic_body(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "error": message}


def _too_many_requests(retry_after: float, body: FaultBody) -> web.Response:
    # HTTP's delta-seconds are whole; a fraction is kept so tests can use sub-second waits.
    seconds = f"{retry_after:.3g}" if retry_after != int(retry_after) else str(int(retry_after))
    return web.json_response(
        body(429, "Too many requests"),
        status=429,
        headers={"Retry-After": seconds},
    )
