"""The provider-neutral shell of every sandbox: request statistics and the ``/_sandbox/`` routes.

A provider sandbox supplies its API routes and a ``Books`` object (what it created, its
runtime options); this module wraps them in an app that counts every API request and lets a
test or an operator look inside and change things while it runs:

- ``GET /_sandbox/created``: what the provider created, oldest first.
- ``GET /_sandbox/stats``: API requests by route and status, faults injected by kind, which
  auth-looking header *names* each request carried (values are never kept), plus the
  provider's own figures (e.g. credits left).
- ``GET /_sandbox/state``, ``POST /_sandbox/state``: read or change faults and provider options
  (``{"faults": {...}, "credits": 3, ...}``); a bad key answers 400 and changes nothing.
- ``POST /_sandbox/reset``: back to the configuration the sandbox started with, nothing created.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from worker.testing.sandbox.faults import (
    FAULT_BODY,
    FAULTS,
    INJECTED,
    INTROSPECTION_PREFIX,
    FaultBody,
    FaultConfig,
    Faults,
    fault_middleware,
)

RECENT_LIMIT = 1000
# Header names that carry credentials at some provider (x-api-token, Authorization, cookies).
AUTH_HINTS = ("auth", "token", "key", "secret", "cookie", "session")


class Books(Protocol):
    """A provider sandbox's own state, as the introspection routes see it."""

    def created(self) -> list[dict[str, Any]]:
        """What was created, oldest first, as JSON-ready records."""
        ...

    def summary(self) -> dict[str, Any]:
        """Figures and options worth showing in stats and state (e.g. credits left)."""
        ...

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Apply option changes at runtime; ``ValueError`` (and no change) on a bad key."""
        ...

    def reset(self) -> None:
        """Forget everything created and return to the starting options."""
        ...


class Stats:
    """Counts of API requests; header values are never recorded, only names."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, int]] = {}
        self.auth_headers: dict[str, int] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LIMIT)

    def record(self, request: web.Request, status: int | str) -> None:
        route = f"{request.method} {request.path}"
        by_status = self.requests.setdefault(route, {})
        by_status[str(status)] = by_status.get(str(status), 0) + 1
        names = sorted({name.lower() for name in request.headers if _looks_like_auth(name)})
        for name in names:
            self.auth_headers[name] = self.auth_headers.get(name, 0) + 1
        self.recent.append(
            {"route": route, "status": status, "fault": request.get(INJECTED), "auth": names}
        )

    def clear(self) -> None:
        self.requests.clear()
        self.auth_headers.clear()
        self.recent.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "auth_headers": self.auth_headers,
            "recent": list(self.recent),
        }


STATS = web.AppKey("stats", Stats)
BOOKS = web.AppKey("books", Books)
INITIAL_FAULTS = web.AppKey("initial_faults", FaultConfig)


def sandbox_app(
    books: Books, faults: FaultConfig | None = None, *, fault_body: FaultBody | None = None
) -> web.Application:
    """An app with stats, fault injection and introspection; the provider adds its routes.
    ``fault_body(status, message)`` shapes injected 429s and 500s like the provider's errors."""
    app = web.Application(middlewares=[stats_middleware, fault_middleware])
    if fault_body is not None:
        app[FAULT_BODY] = fault_body
    app[BOOKS] = books
    app[STATS] = Stats()
    app[FAULTS] = Faults(faults)
    app[INITIAL_FAULTS] = faults or FaultConfig()
    app.router.add_get(INTROSPECTION_PREFIX + "created", _created)
    app.router.add_get(INTROSPECTION_PREFIX + "stats", _stats)
    app.router.add_get(INTROSPECTION_PREFIX + "state", _state)
    app.router.add_post(INTROSPECTION_PREFIX + "state", _change_state)
    app.router.add_post(INTROSPECTION_PREFIX + "reset", _reset)
    return app


@web.middleware
async def stats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each API request by route and final status (``reset`` when none was sent)."""
    if request.path.startswith(INTROSPECTION_PREFIX):
        return await handler(request)
    stats = request.app[STATS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        stats.record(request, exc.status)
        raise
    stats.record(request, "reset" if request.get(INJECTED) == "reset" else response.status)
    return response


def state_of(app: web.Application) -> dict[str, Any]:
    """Faults and provider options as ``GET /_sandbox/state`` shows them."""
    return {"faults": app[FAULTS].config.as_dict(), **app[BOOKS].summary()}


def change_state(app: web.Application, changes: Mapping[str, Any]) -> None:
    """Apply ``POST /_sandbox/state`` changes; ``ValueError`` leaves everything as it was."""
    faults = changes.get("faults") or {}
    if not isinstance(faults, Mapping):
        raise TypeError("faults: expected an object")
    new_faults = app[FAULTS].config.updated(faults)
    app[BOOKS].configure({key: value for key, value in changes.items() if key != "faults"})
    if faults:
        app[FAULTS].configure(new_faults)


def reset_app(app: web.Application) -> None:
    """Back to the starting configuration, with nothing created and nothing counted."""
    app[BOOKS].reset()
    app[STATS].clear()
    app[FAULTS].configure(app[INITIAL_FAULTS])
    app[FAULTS].reset_counts()


async def _created(request: web.Request) -> web.Response:
    return web.json_response({"created": request.app[BOOKS].created()})


async def _stats(request: web.Request) -> web.Response:
    app = request.app
    body = {**app[STATS].as_dict(), "faults_injected": app[FAULTS].injected}
    return web.json_response({**body, **app[BOOKS].summary()})


async def _state(request: web.Request) -> web.Response:
    return web.json_response(state_of(request.app))


async def _change_state(request: web.Request) -> web.Response:
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        change_state(request.app, changes)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(state_of(request.app))


async def _reset(request: web.Request) -> web.Response:
    reset_app(request.app)
    return web.json_response(state_of(request.app))


def _looks_like_auth(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in AUTH_HINTS)


class SandboxState:
    """An in-process view of a running sandbox, for tests: the same powers as ``/_sandbox/``."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    @property
    def books(self) -> Books:
        return self._app[BOOKS]

    @property
    def faults(self) -> Faults:
        return self._app[FAULTS]

    @property
    def stats(self) -> Stats:
        return self._app[STATS]

    def change(self, changes: Mapping[str, Any]) -> None:
        """As ``POST /_sandbox/state``: ``{"faults": {...}, "credits": 3, ...}``."""
        change_state(self._app, changes)

    def reset(self) -> None:
        """As ``POST /_sandbox/reset``."""
        reset_app(self._app)
