"""How the console sets its cookies: ``HttpOnly``, ``SameSite=Strict``, and ``Secure`` when
``[console] secure_cookies`` says so.

``Secure`` keeps a browser from sending the cookie over plain http, where anyone on the path
reads it. Set to true or false, it is that. Unset, the console decides (``Console
.secure_cookies`` None): ``Secure`` when the request came over https, through TLS of its own
or from a proxy saying ``X-Forwarded-Proto: https``. A client that sends that header over plain
http only makes its own cookie one its browser will not send back. ``ConsoleSettings
.cookies_secure`` also turns it on for any console not listening on loopback.
"""

from __future__ import annotations

from aiohttp import web

from worker.console.rendering import CONSOLE


def secure(request: web.Request) -> bool:
    """Whether the cookies set in answer to ``request`` carry ``Secure``."""
    configured = request.app[CONSOLE].secure_cookies
    if configured is not None:
        return configured
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=secure(request),
        path=path,
        max_age=max_age,
    )


def del_cookie(request: web.Request, response: web.StreamResponse, name: str, *, path: str) -> None:
    # Deleted with the attributes it was set with: a browser keeps a Secure cookie that an
    # answer without Secure tries to overwrite.
    response.del_cookie(name, path=path, secure=secure(request), httponly=True, samesite="Strict")
