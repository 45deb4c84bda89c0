"""Billit's HTTP connection for one account: base URL, bearer token, one aiohttp session.

``base_url`` may end in ``/v1`` or not (Billit's documents write it with): the suffix is cut
here and every path carries it. The session opens on first use, so constructing an adapter
opens no sockets, and reopens after ``aclose``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from worker.errors import TransportError
from worker.providers import http
from worker.providers.base import HttpTimeouts

READ_RETRIES = 2
READ_RETRY_PAUSE = 0.05


class BillitClient:
    """Requests to one Billit account; ``TransportError`` when no answer arrived,
    ``http.RedirectError`` (never retried) for a 3xx."""

    def __init__(self, base_url: str, token: str, timeouts: HttpTimeouts) -> None:
        self.base = base_url.rstrip("/").removesuffix("/v1")
        self._token = token
        self._timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        # The token stays out of reprs, which end up in tracebacks and debug logs.
        return f"BillitClient(base={self.base!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> http.Reply:
        """One request; a GET that fails as a service (no answer, or 5xx) is tried again up to
        ``READ_RETRIES`` times at once: a read changes nothing, and a tag scan of dozens of
        reads would otherwise rarely survive a provider that fails one request in ten."""
        retries = READ_RETRIES if method == "GET" else 0
        for attempt in range(retries):
            try:
                reply = await self._send(method, path, params=params, json_body=json_body)
            except TransportError:
                pass
            else:
                if reply.status < 500:
                    return reply
            await asyncio.sleep(READ_RETRY_PAUSE * (attempt + 1))
        return await self._send(method, path, params=params, json_body=json_body)

    async def _send(
        self, method: str, path: str, *, params: Mapping[str, str] | None, json_body: Any
    ) -> http.Reply:
        return await http.request(
            self._client(),
            method,
            self.base + path,
            headers=self._headers(),
            bounds=self._timeouts,
            secrets=[self._token],
            json_body=json_body,
            params=params,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await http.close_session(session, self._timeouts)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = http.new_session(self._timeouts)
        return self._session

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
