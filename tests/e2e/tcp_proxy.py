"""A loopback TCP proxy that can take a service away: the database outage of the e2e tests.

``TcpProxy(upstream_port)`` listens on a free loopback port and pipes every connection to
``127.0.0.1:upstream_port`` (or to the Unix socket ``upstream_unix``: the embedded server the
tests fall back to listens on one). ``go_down()`` aborts every open connection (both sides) and stops
listening, so new connections are refused, as when PostgreSQL or the network between goes away;
``come_back()`` listens again on the same port. It runs its own event loop in a thread, so a test
can drive it with plain calls while subprocesses talk through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536


class TcpProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        upstream_unix: str | None = None,
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._upstream_unix = upstream_unix
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0
        """Connections accepted so far (while up)."""
        self.dropped = 0
        """Connections cut by ``go_down``."""

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self.port = _free_port()
        self._call(self._listen())
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(Exception):
            self._call(self._down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def up(self) -> bool:
        return self._server is not None

    def go_down(self) -> None:
        """Cut every connection and refuse new ones until ``come_back``."""
        self._call(self._down())

    def come_back(self) -> None:
        self._call(self._listen())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._pipe, "127.0.0.1", self.port, reuse_address=True
            )

    async def _down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            self.dropped += 1
            writer.transport.abort()
        self._writers.clear()

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant before going down
            client_w.transport.abort()
            return
        try:
            if self._upstream_unix is not None:
                server_r, server_w = await asyncio.open_unix_connection(self._upstream_unix)
            else:
                server_r, server_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_w, server_w))
        try:
            await asyncio.gather(_copy(client_r, server_w), _copy(server_r, client_w))
        finally:
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.transport.abort()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
