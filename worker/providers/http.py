"""The HTTP exchange every adapter makes, with aiohttp's failures translated at this one seam.

An adapter gets back a ``Reply`` (any status, body parsed as JSON when it is JSON) or a
``TransportError`` whose ``sent`` flag says whether the provider may have acted on the request.
That flag is what "never duplicate" rests on: a timeout after the request went out is an unknown
outcome, a refused connection is not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from worker.errors import TransportError
from worker.outcome import Synced
from worker.providers.base import HttpTimeouts


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any
    """Parsed JSON when the body is JSON, else the text (possibly empty)."""


def new_session(timeouts: HttpTimeouts, *, limit: int = 100) -> aiohttp.ClientSession:
    """A client session with our timeouts; one per account, so accounts never share headers."""
    timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, raise_for_status=False)


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request and read the whole answer; raise ``TransportError`` if none arrived."""
    data = None if json_body is None else json.dumps(json_body, separators=(",", ":"))
    try:
        async with session.request(
            method, url, headers=headers, data=data, params=params
        ) as response:
            text = await response.text()
            return Reply(status=response.status, headers=response.headers, body=_parse(text))
    except aiohttp.ClientConnectorError as exc:
        # The TCP connection never opened: nothing reached the provider.
        raise TransportError(f"cannot connect: {exc.os_error or exc}", sent=False) from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise TransportError("timed out connecting", sent=False) from exc
    except TimeoutError as exc:
        raise TransportError("timed out waiting for the answer", sent=True) from exc
    except aiohttp.ClientError as exc:
        # Reset, disconnect or a broken payload after the request was written.
        raise TransportError(f"connection failed: {type(exc).__name__}: {exc}", sent=True) from exc


def _parse(text: str) -> Any:
    if not text:
        return ""
    try:
        return json.loads(text)
    except ValueError:
        return text


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date), or None
    when it is absent or unreadable (the engine's own backoff then applies). Every provider
    may send one, so it is read here, at the HTTP seam."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return _seconds_until(value, now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# An ``X-RateLimit-Reset`` above this is a Unix time, below it a number of seconds.
_EPOCH_FLOOR = 1_000_000_000


def reset_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds until the provider's quota comes back, when its answer says: ``Retry-After``,
    else ``X-RateLimit-Reset`` (seconds, or a Unix time); None when neither is readable."""
    wait = retry_after(headers.get("Retry-After"), now)
    if wait is not None:
        return wait
    try:
        value = float(headers.get("X-RateLimit-Reset", "").strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return max(0.0, value - now.timestamp()) if value > _EPOCH_FLOOR else value


def quota_spent(headers: Mapping[str, str], now: datetime, *, window: float) -> float | None:
    """Seconds to hold an account whose answer says its quota is spent
    (``X-RateLimit-Remaining: 0``), so the next request does not earn a 429; None otherwise.

    The wait is the reset the provider gives (``reset_after``), else ``window``: the period of
    the account's configured ``rate_limit``, the longest a quota of that many requests per
    period can take to come back (a provider counting "10 a second" is never held a minute).
    """
    try:
        remaining = float(headers.get("X-RateLimit-Remaining", "").strip())
    except ValueError:
        return None
    if not math.isfinite(remaining) or remaining > 0:
        return None
    wait = reset_after(headers, now)
    return window if wait is None else wait


def with_quota_hold(synced: Synced, reply: Reply, now: datetime, *, window: float) -> Synced:
    """``synced`` carrying the hold its answer's rate-limit headers ask for (``quota_spent``).

    Every adapter's success goes through this, so a provider that reports a spent quota is
    honoured whichever it is, not only the one whose documents mention the headers."""
    wait = quota_spent(reply.headers, now, window=window)
    return replace(synced, quota_wait=wait) if wait else synced
