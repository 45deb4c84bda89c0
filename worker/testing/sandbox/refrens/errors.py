"""Feathers errors as the Refrens sandbox raises and answers them.

Refrens runs on Feathers: every error body is ``{"name", "message", "code", "className",
"data", "errors"}``, with ``data`` left out when there is none and ``errors`` ``{}`` by default
(the document's 401 example). The names, class names and codes are Feathers' own.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

KINDS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "bad-request"),
    401: ("NotAuthenticated", "not-authenticated"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "not-found"),
    405: ("MethodNotAllowed", "method-not-allowed"),
    409: ("Conflict", "conflict"),
    429: ("TooManyRequests", "too-many-requests"),
    500: ("GeneralError", "general-error"),
}


class FeathersError(Exception):
    """One Feathers error; ``response()`` is the answer Refrens sends for it."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        data: Any = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.errors = errors or {}

    def as_json(self) -> dict[str, Any]:
        name, class_name = KINDS[self.code]
        body: dict[str, Any] = {"name": name, "message": self.message, "code": self.code}
        body["className"] = class_name
        if self.data is not None:
            body["data"] = self.data
        body["errors"] = self.errors
        return body

    def response(self) -> web.Response:
        return web.json_response(self.as_json(), status=self.code)


def not_authenticated(message: str, **data: Any) -> FeathersError:
    """401 as Refrens words it; ``data`` repeats the message, as in the document's example."""
    return FeathersError(401, message, data={"message": message, **data})
