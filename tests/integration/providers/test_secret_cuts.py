"""A provider that echoes the credential where our cuts fall (the 8 KiB kept of a response, the
200 characters kept of a message) leaks neither the credential nor any prefix of it.

A real aiohttp app answers every call with HTTP 500 and such a body, for each adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from aiohttp import web

from tests.edges import adapter_for, create_once, serve
from worker.outcome import Outcome
from worker.providers.base import RESPONSE_LIMIT
from worker.testing.sandbox import PROFILES

# Its first two characters appear nowhere else, so any prefix of two or more is a leak.
TOKEN = "Qj7c0ffee4d2b9a8e1f6c3b5a7d9e0f1a2b3c4d5e6"
MESSAGE_LIMIT = 200
INSIDE = 6  # how many of the token's characters lie before each cut


def text_echo() -> str:
    """Plain text with the token across the 200-character and the 8 KiB cut."""
    head = "y" * (MESSAGE_LIMIT - INSIDE) + TOKEN
    middle = "z" * (RESPONSE_LIMIT - INSIDE - len(head))
    return head + middle + TOKEN + "w" * 64


def json_echo() -> str:
    """JSON whose token is written with an escape (so the raw text never holds it) and sits
    across the 8 KiB cut of the stored response once parsed and written out again."""
    escaped = "\\u0051" + TOKEN[1:]
    prefix_len = len('{"error": "')
    pad = "y" * (RESPONSE_LIMIT - INSIDE - prefix_len)
    return '{"error": "' + pad + escaped + '", "message": "x"}'


def leaked_prefixes(outcome: Outcome) -> list[str]:
    text = repr(outcome) + json.dumps(getattr(_inner(outcome), "response", None))
    return [TOKEN[:n] for n in range(2, len(TOKEN) + 1) if TOKEN[:n] in text]


def _inner(outcome: Outcome) -> object:
    return getattr(outcome, "invoice", outcome)


@pytest.mark.parametrize("provider", ["billclap", "billit", "refrens"])
@pytest.mark.parametrize("body", [text_echo(), json_echo()], ids=["text", "json"])
async def test_no_prefix_of_the_token_survives_a_cut(provider: str, body: str) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=500, text=body, content_type="text/plain")

    profile = PROFILES[provider]
    async with serve(echo) as url:
        outcome = await create_once(profile, adapter_for(profile, url, token=TOKEN))
    response = getattr(_inner(outcome), "response", None)
    assert response is not None, outcome  # the stored answer is there, just clean
    assert leaked_prefixes(outcome) == []


@pytest.mark.parametrize("provider", ["billclap", "billit", "refrens"])
async def test_an_answer_too_broken_to_parse_quotes_no_prefix_of_the_token(provider: str) -> None:
    # aiohttp's parser error quotes bytes of the answer, cut with its own marks: an over-long
    # header line echoing the token must not reach the outcome through that message.
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Echo: Bearer "
        + b"B" * 60
        + TOKEN.encode()
        + b"A" * 9000
        + b"\r\n\r\n"
    )

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read(65536)
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        profile = PROFILES[provider]
        adapter = adapter_for(profile, f"http://127.0.0.1:{port}", token=TOKEN)
        try:
            outcome = await create_once(profile, adapter)
        finally:
            await adapter.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert leaked_prefixes(outcome) == [], outcome
