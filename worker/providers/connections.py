"""The TCP connections that the accounts' HTTP sessions of one process share.

Every account keeps its own aiohttp session (``worker.providers.http.new_session``): its own
timeouts and cookie jar. Built with a ``ConnectionPool`` (the daemon's ``RuntimeFactory`` does),
those sessions draw their connections from one ``TCPConnector``: a keep-alive connection to a
provider's host and port that one account's call left open is reused by the next call to that
host and port, whichever account makes it, as any HTTP client's pool does. Without it each
account opened (and, idle, closed) its own connections, and ten thousand accounts with one
invoice each paid a TCP connect (and a TLS handshake) per invoice that one account with ten
thousand invoices pays a few times.

Why sharing is safe: nothing of an account stays on a connection. Adapters send the account's
credentials in each request's own headers, never as session defaults; cookies live in each
session's own jar, never in the connector; and an HTTP/1.1 connection carries one exchange at
a time, handed back to the pool only once its answer was read in full (a connection whose
exchange failed is closed, not reused).

The connector opens on the first session and closes when the last session using it closes
(``release``): every account's adapter closes at shutdown, and so does it.
"""

from __future__ import annotations

import aiohttp


class ConnectionPool:
    """One ``TCPConnector`` for the sessions it hands out, open while any of them is."""

    def __init__(self) -> None:
        self._connector: aiohttp.TCPConnector | None = None
        self._sessions: set[aiohttp.ClientSession] = set()

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def session(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        """A new session (its own cookie jar) on the shared connector; ``release`` it."""
        if self._connector is None or self._connector.closed:
            # No cap on connections: the engine's ``max_in_flight`` bounds the calls in
            # flight, and with them the connections in use; a cap here would make calls wait
            # for a connection inside their own timeout.
            self._connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        session = aiohttp.ClientSession(
            timeout=timeout,
            connector=self._connector,
            connector_owner=False,
            raise_for_status=False,
        )
        self._sessions.add(session)
        return session

    async def release(self, session: aiohttp.ClientSession) -> None:
        """Close ``session``; the connector too when no other session uses it."""
        await session.close()
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        if not self._sessions and self._connector is not None:
            # Taken out first: a session made while it closes gets a new connector.
            connector, self._connector = self._connector, None
            await connector.close()
