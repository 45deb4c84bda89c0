"""Answers of a hostile provider (or of whatever sits at its address), for the fault middleware.

- ``redirect``: ``307`` pointing to the same path at another host, as a moved API, a captive
  proxy or an attacker who took over the address would answer. Nothing is created.
- ``inflate``: after the invoice is created, a small gzip body that inflates to
  ``inflate_mib`` MiB: a client that reads answers whole runs out of memory.
- ``drip``: after the invoice is created, a body sent a byte at a time for ``drip_seconds``: a
  client without a deadline on the whole answer waits for ever.
- ``echo``: an HTTP 500 whose text repeats the request's credential where a client cuts what
  it keeps (200 characters of a message, 8 KiB of a response), so a cut made before scrubbing
  leaves a prefix of it. Nothing is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import zlib

from aiohttp import web

MIB = 1024 * 1024
DRIP_EVERY = 0.1
# Where the worker cuts what it keeps of an error: the message, then the whole response. The
# sandbox states them itself rather than import the client it checks;
# tests/unit/testing/test_sandbox_independence.py keeps them equal to the worker's.
MESSAGE_CUT = 200
RESPONSE_CUT = 8 * 1024
# How many of the credential's characters lie before each cut edge.
INSIDE = 6
MOVED = "https://moved.invalid"
# Header names that carry credentials at some provider (x-api-token, Authorization, ...).
CREDENTIAL_HINTS = ("auth", "token", "key", "secret")


def redirect(request: web.Request, target: str) -> web.Response:
    """``307`` to ``target`` (a base URL) with the request's path and query."""
    location = (target or MOVED).rstrip("/") + request.path_qs
    return web.Response(status=307, headers={"Location": location})


@functools.cache
def bomb(mib: float) -> bytes:
    """``mib`` MiB of spaces, gzipped (about a thousandth of the size), made once per size."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * MIB
    whole, rest = divmod(int(mib * MIB), MIB)
    parts = [packer.compress(block) for _ in range(whole)]
    return b"".join([*parts, packer.compress(b" " * rest), packer.flush()])


def inflate(status: int, mib: float) -> web.Response:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return web.Response(status=status, body=bomb(mib), headers=headers)


async def drip(request: web.Request, seconds: float) -> web.StreamResponse:
    """A 200 whose body comes one byte every ``DRIP_EVERY`` seconds, for ``seconds``."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    ends = time.monotonic() + seconds
    with contextlib.suppress(ConnectionError):
        while time.monotonic() < ends:
            await response.write(b" ")
            await asyncio.sleep(DRIP_EVERY)
    return response


async def echo(request: web.Request) -> web.Response:
    """A 500 repeating the request's credential across both cut edges."""
    credential = await _credential(request) or "no-credential-sent"
    head = "e" * (MESSAGE_CUT - INSIDE) + credential
    middle = "e" * max(0, RESPONSE_CUT - INSIDE - len(head))
    text = head + middle + credential + " (echoed)"
    return web.Response(status=500, text=text, content_type="text/plain")


async def _credential(request: web.Request) -> str | None:
    for name, value in request.headers.items():
        if any(hint in name.casefold() for hint in CREDENTIAL_HINTS) and value.strip():
            return value.removeprefix("Bearer ").strip()
    if request.can_read_body:
        with contextlib.suppress(ValueError):
            body = await request.json()
            secret = body.get("appSecret") if isinstance(body, dict) else None
            return secret if isinstance(secret, str) else None
    return None
