"""The HTTP exchange every adapter makes, with aiohttp's failures translated at this one seam.

An adapter gets back a ``Reply`` (any status but 3xx, body parsed as JSON when it is JSON), a
``TransportError`` whose ``sent`` flag says whether the provider may have acted on the request,
or ``RedirectError``. That flag is what "never duplicate" rests on: a timeout after the request
went out is an unknown outcome, a refused connection is not.

What a provider answers is not trusted (only the database and the config are), so this seam:

- never follows a redirect: a 3xx would carry the credential, a login body or the invoice to
  whichever host it names, and a fake success from there would be recorded as synced. It
  raises ``RedirectError``, which adapters turn into a pause of the account (``paused``);
- reads at most ``max_response_size`` bytes of a body, after decompression, within the
  request's total timeout; past the size it is a ``TransportError`` with ``sent=True``;
- scrubs the account's secrets out of the body, before it is parsed, stored or cut.

Each account has its own session (``new_session``); in the daemon the sessions share their TCP
connections (``worker.providers.connections``). That is safe because every adapter sends the
account's credentials in each request's own headers, never as session defaults, and cookies
stay in each session's jar: a reused connection carries nothing of the account that used it
last. The shared connector closes with the last session (``close_session``), at shutdown.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from worker import tracing
from worker.errors import ProviderError, TransportError
from worker.outcome import PauseAccount, PauseReason, Retry, Synced
from worker.providers import calls
from worker.providers.base import HttpTimeouts
from worker.providers.redaction import (
    holds_none,
    scrub_text,
    scrub_value,
    secrets_to_cut,
)
from worker.texts import cut

READ_CHUNK = 64 * 1024
# The deepest an answer may nest and still be read as JSON; a deeper one is kept as its text.
# Providers answer a few levels deep. Thousands of levels (a hostile answer of a few KB) made
# the walks that follow (the scrub, the outcome's encoding for the flush) overflow Python's
# stack, and orjson refuses past 255.
ANSWER_DEPTH = 64
# The characters RFC 9110 refuses in a header value: the controls but tab, and DEL.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
LOCATION_SHOWN = 100
# ``json.dumps(body, separators=(",", ":"))``, built once: with an option, dumps builds one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))

# aiohttp's errors for a URL it will not request (raised before connecting, except for the
# variants about a redirect's target).
_UNUSABLE_URL = (aiohttp.InvalidUrlClientError, aiohttp.NonHttpUrlClientError)


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any
    """Parsed JSON when the body is JSON, else the text (possibly empty); secrets scrubbed."""


class RedirectError(ProviderError):
    """The provider answered 3xx: ``base_url`` (or the provider's address) has moved, or is
    not the provider. Nothing was created; the redirect was not followed."""

    def __init__(self, status: int, location: str | None) -> None:
        self.status = status
        self.target = _shown_location(location)
        super().__init__(f"answered HTTP {status} pointing to {self.target}")

    def paused(self, provider: str) -> PauseAccount:
        """The account waits (misconfigured) and the row with it, its outcome known."""
        error = (
            f"{provider} {self}: base_url has moved or is not the provider's API. invoice-sync "
            "never follows redirects, so nothing was sent there and nothing was created; "
            "check the provider's address and update base_url"
        )
        waiting = Retry(error=error, outcome_unknown=False, http_status=self.status)
        return PauseAccount(reason=PauseReason.MISCONFIGURED, invoice=waiting)


def new_session(timeouts: HttpTimeouts, *, limit: int = 100) -> aiohttp.ClientSession:
    """A client session with our timeouts; one per account, so accounts never share headers
    or cookies. Its connections are ``timeouts.pool``'s when it has one (shared by the
    accounts, which is safe: see ``worker.providers.connections``), else its own (at most
    ``limit``). Close it with ``close_session``.

    ``total`` bounds the whole exchange, reading the body included, so a body that drips a
    byte at a time fails by then like any slow answer (``TimeoutError``, outcome unknown).
    """
    timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
    if timeouts.pool is not None:
        return timeouts.pool.session(timeout)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, raise_for_status=False)


async def close_session(session: aiohttp.ClientSession, timeouts: HttpTimeouts) -> None:
    """Close a session ``new_session(timeouts)`` made, and the shared connections once no
    session uses them."""
    if timeouts.pool is not None:
        await timeouts.pool.release(session)
    else:
        await session.close()


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    bounds: HttpTimeouts,
    secrets: Sequence[str] = (),
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request and read its answer within ``bounds``, with ``secrets`` scrubbed out;
    raise ``TransportError`` if no complete answer arrived, ``RedirectError`` for a 3xx.
    The request is noted in the attempt's history (``calls``): its status and duration only."""
    refuse_unsendable(headers)
    started = time.monotonic()
    status: int | None = None
    try:
        reply = await _send(
            session,
            method,
            url,
            headers=headers,
            bounds=bounds,
            secrets=secrets,
            json_body=json_body,
            params=params,
        )
        status = reply.status
        return reply
    except RedirectError as exc:
        status = exc.status
        raise
    finally:
        calls.note(status, time.monotonic() - started)


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    bounds: HttpTimeouts,
    secrets: Sequence[str],
    json_body: Any,
    params: Mapping[str, str] | None,
) -> Reply:
    """``request`` without the history note: the body encoded, the answer read, in a span
    when tracing is on."""
    data = None if json_body is None else _COMPACT.encode(json_body)
    cut_out = secrets_to_cut(secrets)
    exchange = _exchange(
        session,
        method,
        url,
        headers=headers,
        data=data,
        params=params,
        bounds=bounds,
        cut_out=cut_out,
    )
    if not tracing.ENABLED:
        return await exchange
    with tracing.http_span(method, traced_url(url, cut_out)) as span:
        reply = await exchange
        span.answered(reply.status)
        return reply


async def _exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    data: str | None,
    params: Mapping[str, str] | None,
    bounds: HttpTimeouts,
    cut_out: Sequence[str],
) -> Reply:
    try:
        async with session.request(
            method, url, headers=headers, data=data, params=params, allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                raise RedirectError(response.status, response.headers.get("Location"))
            raw = await _read_bounded(response, bounds.max_response_size)
            body = _parse(_decode(raw, response.charset), cut_out)
            return Reply(status=response.status, headers=response.headers, body=body)
    except _UNUSABLE_URL as exc:
        # Refused before connecting, unless it is a redirect's target (a request went out).
        sent = isinstance(exc, aiohttp.RedirectClientError)
        raise TransportError(f"not a URL we can send to ({type(exc).__name__})", sent=sent) from exc
    except aiohttp.ClientConnectorError as exc:
        # The TCP connection never opened: nothing reached the provider.
        raise TransportError(f"cannot connect: {exc.os_error or exc}", sent=False) from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise TransportError("timed out connecting", sent=False) from exc
    except TimeoutError as exc:
        raise TransportError("timed out waiting for the answer", sent=True) from exc
    except aiohttp.ClientError as exc:
        # Reset, disconnect or a broken payload after the request was written. Only the type:
        # aiohttp's message quotes bytes of the answer, cut with its own marks, so a secret the
        # answer echoed could survive in it as a prefix.
        raise TransportError(f"connection failed: {type(exc).__name__}", sent=True) from exc


def traced_url(url: str, secrets: Sequence[str]) -> str:
    """``url`` as a span shows it: scheme, host, port and path, without credentials, query or
    fragment, and with the account's secrets cut out of what is left (a path may hold an id
    from the config, never meant to hold a secret, but a span outlives such a mistake)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "an unreadable URL"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "") + parts.path
    return scrub_text(shown, secrets)


def refuse_unsendable(headers: Mapping[str, str]) -> None:
    """``TransportError(sent=False)`` when a header value holds a control character (RFC 9110
    allows none but tab): aiohttp would refuse it only once connected, as a ``ValueError`` the
    callers would take for an unknown outcome. The value is never shown (it is a token)."""
    for name, value in headers.items():
        if _CONTROL.search(value):
            raise TransportError(f"header {name} holds a control character", sent=False)


def _shown_location(location: str | None) -> str:
    """Where a redirect points, as scheme and host only: a query or path may carry anything
    (even our own secrets echoed back), and the text ends up in tables and logs."""
    if location is None or not location.strip():
        return "nowhere (no Location)"
    if not location.strip().isprintable():
        return "an unreadable Location"
    try:
        parts = urlsplit(location.strip())
        port = parts.port
    except ValueError:
        return "an unreadable Location"
    host = parts.hostname or ""
    if not parts.scheme or not host:
        return "another path on the same host"
    if not all(ch.isalnum() or ch in ".-:_" for ch in host) or not parts.scheme.isalpha():
        return "an unreadable Location"
    host = f"[{host}]" if ":" in host else host
    shown = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")
    return cut(shown, LOCATION_SHOWN)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, decompressed, stopping as soon as it outgrows ``limit``: a provider (or a
    proxy) that answers without end, or a small gzip that inflates to gigabytes, costs at
    most ``limit`` plus one chunk of memory."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise TransportError(
                f"the answer (HTTP {response.status}) is larger than max_response_size "
                f"({limit} bytes); the rest was not read",
                sent=True,
            )
    return bytes(body)


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _parse(text: str, secrets: Sequence[str]) -> Any:
    """The answer as JSON when it is JSON, else its text; scrubbed once, after parsing: an
    escaped echo (``\u0051...``) is in the parsed values, not in the raw text."""
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # the json module's own limit: about 1,000 deep
        return scrub_text(text, secrets)
    if not nested_within(text, parsed, ANSWER_DEPTH):
        return scrub_text(text, secrets)
    if not secrets or ("\\" not in text and holds_none(text, secrets)):
        # Without an escape, every string parsed is a piece of the text as it came: a text
        # with nothing to scrub has nothing to scrub in them, and one search decides it.
        return parsed
    return scrub_value(parsed, secrets)


def nested_within(text: str, parsed: Any, limit: int) -> bool:
    """Whether ``parsed`` (read from ``text``) nests at most ``limit`` arrays and objects deep:
    at once when the text opens no more than that many in all (the usual answer), else by a
    walk that needs no stack of its own."""
    if text.count("[") + text.count("{") <= limit:
        return True
    stack: list[tuple[Any, int]] = [(parsed, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            inner: Any = value.values()
        elif isinstance(value, list):
            inner = value
        else:
            continue
        if depth > limit:
            return False
        stack.extend((item, depth + 1) for item in inner)
    return True


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
    spent = headers.get("X-RateLimit-Remaining")
    if spent is None:  # the usual answer: no exception raised and caught for it
        return None
    try:
        remaining = float(spent.strip())
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
