"""Refrens bearer tokens: a static one from the config, or one from app-secret login.

App-secret login (``POST /authentication {"strategy": "app-secret", "appId", "appSecret"}`` →
``{"accessToken", ...}``) gives a JWT that lasts at most a day. It is cached and shared by
every concurrent attempt of the account; when Refrens answers 401, the attempt asks for a fresh
one with the token it used (``refresh(stale)``). One login runs at a time: attempts that find
the token already replaced by another's login take that one instead of logging in again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

import aiohttp

from worker.errors import ProviderError, TransportError
from worker.outcome import Outcome, Retry
from worker.providers import calls, http
from worker.providers.base import HttpTimeouts
from worker.providers.refrens.answers import classify_login, classify_transport_error

LOGIN_PATH = "/authentication"
REMEMBERED_TOKENS = 4
# The longest issued token taken (a Refrens JWT is about a kilobyte). Each token is a secret
# every later answer is searched for, and a hostile server issuing megabyte tokens made each
# search, and each compiled pattern (11 MB apiece), cost seconds and memory without end.
ISSUED_TOKEN_LIMIT = 8192


class LoginError(ProviderError):
    """The app-secret login did not give a token; ``outcome`` is what the invoice gets."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("Refrens app-secret login failed")
        self.outcome = outcome


class Bearer(Protocol):
    """Where an adapter gets its ``Authorization: Bearer`` token."""

    @property
    def refreshable(self) -> bool:
        """Whether ``refresh`` can give a different token than the one refused."""
        ...

    async def token(self) -> str:
        """The current token; may log in (``LoginError``)."""
        ...

    async def refresh(self, stale: str | None) -> str:
        """A token other than ``stale`` if one can be had; may log in (``LoginError``)."""
        ...

    def secrets(self) -> list[str]:
        """Every secret value this source has held, to scrub from outcomes."""
        ...


class StaticToken:
    """A token from the config; Refrens cannot renew it, so a 401 is final."""

    refreshable = False

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken()"

    async def token(self) -> str:
        return self._token

    async def refresh(self, stale: str | None) -> str:
        return self._token

    def secrets(self) -> list[str]:
        return [self._token]


class AppSecretLogin:
    """Tokens from ``POST /authentication`` with the app-secret strategy, cached per account."""

    refreshable = True

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_secret: str,
        client: Callable[[], aiohttp.ClientSession],
        bounds: HttpTimeouts,
    ) -> None:
        self._url = base_url.rstrip("/") + LOGIN_PATH
        self._app_id = app_id
        self._app_secret = app_secret
        self._client = client
        self._bounds = bounds
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._issued: deque[str] = deque(maxlen=REMEMBERED_TOKENS)
        self.logins = 0
        """Successful logins so far (tests and debug logs)."""

    def __repr__(self) -> str:
        return f"AppSecretLogin(app_id={self._app_id!r})"

    async def token(self) -> str:
        if self._token is not None:
            return self._token
        return await self.refresh(None)

    async def refresh(self, stale: str | None) -> str:
        async with self._lock:
            # Another attempt may have logged in while this one waited for the lock.
            if self._token is not None and self._token != stale:
                return self._token
            self._token = None
            token = await self._login()
            self._token = token
            self._issued.append(token)
            self.logins += 1
            return token

    def secrets(self) -> list[str]:
        return [self._app_secret, *self._issued]

    async def _login(self) -> str:
        body = {"strategy": "app-secret", "appId": self._app_id, "appSecret": self._app_secret}
        try:
            with calls.kind(calls.LOGIN):
                reply = await http.request(
                    self._client(),
                    "POST",
                    self._url,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    bounds=self._bounds,
                    # Not the tokens issued before: the new one may repeat one of them.
                    secrets=[self._app_secret],
                    json_body=body,
                )
        except TransportError as exc:
            raise LoginError(classify_transport_error(exc, sending="login")) from exc
        token = reply.body.get("accessToken") if isinstance(reply.body, dict) else None
        if 200 <= reply.status < 300 and isinstance(token, str) and token:
            if usable_token(token):
                return token
            # Neither kept nor shown: it is a secret, if an unusable one.
            raise LoginError(
                Retry(
                    error=(
                        f"Refrens login answered HTTP {reply.status} with a token that cannot be "
                        f"used ({len(token)} characters; at most {ISSUED_TOKEN_LIMIT} printable "
                        "ASCII ones are taken); the invoice was not sent"
                    ),
                    http_status=reply.status,
                )
            )
        if 200 <= reply.status < 300:
            # A 2xx without a token is not a refusal of our credentials: try again later.
            reply = http.Reply(status=502, headers=reply.headers, body=reply.body)
        raise LoginError(classify_login(reply))


def usable_token(token: str) -> bool:
    """Whether an issued token can be sent as a bearer token and searched for in answers:
    printable ASCII (a header value takes nothing else safely), ``ISSUED_TOKEN_LIMIT`` at most."""
    return len(token) <= ISSUED_TOKEN_LIMIT and token.isascii() and token.isprintable()
