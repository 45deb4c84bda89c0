"""What every console handler shares: the ``Console`` context and rendering a template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from worker.console.auth import AdminAuth, Session
from worker.console.overview import ConfiguredAccount
from worker.console.throttle import LoginThrottle
from worker.store.database import Pool
from worker.texts import web_address

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, kw_only=True, slots=True)
class Console:
    """What every handler reads: the pool, the admin credential (None: read-only), the
    configured accounts (no credentials) and where the database is (host and name only)."""

    pool: Pool
    auth: AdminAuth | None
    accounts: Mapping[str, ConfiguredAccount]
    database: str
    templates: jinja2.Environment
    hosts: frozenset[str] | None = None
    """The ``Host`` names answered (``[console] allowed_hosts``); None: any."""
    secure_cookies: bool | None = None
    """Cookies carry ``Secure``: always, never, or None by each request's scheme (``cookies``)."""
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    """Failed logins so far, per client address and in all."""


CONSOLE = web.AppKey("console", Console)
# The admin session the gate read from the cookie; None when nobody is logged in.
SESSION: web.RequestKey[Session | None] = web.RequestKey("session", Session)


def templates() -> jinja2.Environment:
    """Autoescape everywhere: every value on a page may come from a producer or a provider."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = lambda value: (
        "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"
    )
    environment.filters["age"] = format_age
    # A provider's link is a link only if it is a web address (``{% if x is web_address %}``):
    # rows stored before the policy dropped others may hold a javascript: one.
    environment.tests["web_address"] = web_address
    return environment


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    console = request.app[CONSOLE]
    session = request.get(SESSION)
    context = {
        "admin": session is not None,
        "can_login": console.auth is not None,
        "login": session.user if session else None,
        "csrf": console.auth.csrf_token(session) if console.auth and session else "",
        "database": console.database,
        "path": request.path,
        **values,
    }
    html = console.templates.get_template(name).render(context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def refused(request: web.Request, why: str) -> web.Response:
    return render(request, "message.html", status=403, title="Refused", message=why)
