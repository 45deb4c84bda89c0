"""The console's aiohttp application: routes, templates, security headers and the auth gate.

Handlers are thin (``pages`` reads, ``actions`` acts); every query is in the store. The gate
runs before any handler: a POST needs an admin session and that session's CSRF token, and a
read-only console (no admin token configured) refuses every POST with 403 whatever it carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from worker.config.console import host_name
from worker.console import actions, pages
from worker.console.auth import SESSION_COOKIE, AdminAuth
from worker.console.overview import ConfiguredAccount
from worker.console.rendering import CONSOLE, HERE, SESSION, Console, refused, render, templates
from worker.console.throttle import LoginThrottle
from worker.errors import StoreError
from worker.store.database import Pool

log = structlog.get_logger("worker.console")

# No inline script or style, no framing, no referrer: the pages are plain server-rendered HTML
# with one stylesheet of our own; forms post only back to the console.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
# The only POST a visitor without a session may make.
LOGIN_PATH = "/login"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def known_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers only to the configured ``Host`` names: a page from another site that reaches
    the console through a name it re-pointed here (DNS rebinding) reads nothing."""
    hosts = request.app[CONSOLE].hosts
    if hosts is not None and host_name(request.host) not in hosts:
        raise web.HTTPMisdirectedRequest(
            text="This console does not answer to that host name ([console] allowed_hosts)."
        )
    return await handler(request)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads the session; refuses a POST without an admin session and its CSRF token."""
    auth = request.app[CONSOLE].auth
    session = auth.read(request.cookies.get(SESSION_COOKIE)) if auth else None
    request[SESSION] = session
    if request.method in {"GET", "HEAD"}:
        return await handler(request)
    if auth is None:
        return refused(request, "This console is read-only: no admin credential is configured.")
    if request.path == LOGIN_PATH:
        return await handler(request)
    if session is None:
        return refused(request, "Log in first: actions need the admin login.")
    form = await request.post()
    token = form.get("csrf")
    if not isinstance(token, str) or not auth.csrf_ok(session, token):
        return refused(request, "The form's CSRF token is missing or does not match your session.")
    return await handler(request)


@web.middleware
async def store_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A database failure is a 503 page naming no detail (the log has it)."""
    try:
        return await handler(request)
    except StoreError as exc:
        log.warning("console.store_error", path=request.path, error=str(exc))
        return render(
            request,
            "message.html",
            status=503,
            title="Database unavailable",
            message="The database did not answer; try again shortly.",
        )


def build_app(
    pool: Pool,
    *,
    auth: AdminAuth | None,
    accounts: Mapping[str, ConfiguredAccount],
    database: str,
    hosts: frozenset[str] | None = None,
    secure_cookies: bool | None = None,
    login_throttle: LoginThrottle | None = None,
) -> web.Application:
    """The console for ``pool``; ``auth`` None makes it read-only; ``hosts`` the ``Host``
    names it answers to (None: any); ``secure_cookies`` whether cookies carry ``Secure``
    (None: when the request came over https); ``login_throttle`` a new one unless given
    (tests give one on their own clock)."""
    app = web.Application(middlewares=[security_headers, known_host, store_errors, gate])
    app[CONSOLE] = Console(
        pool=pool,
        auth=auth,
        accounts=accounts,
        database=database,
        templates=templates(),
        hosts=hosts,
        secure_cookies=secure_cookies,
        login_throttle=login_throttle or LoginThrottle(),
    )
    pages.add_routes(app)
    actions.add_routes(app)
    app.router.add_static("/static", HERE / "static")
    return app
