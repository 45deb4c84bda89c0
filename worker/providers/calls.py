"""The provider requests one attempt makes, counted at the HTTP seam for the attempt's row in
the history (``invoice_sync.attempt``): each request's kind, HTTP status and time taken.

Never a URL, a header or a body: they carry tokens, app secrets and the invoice itself, and the
history is kept for months. A status and a duration cannot leak a secret.

The engine opens a record for each attempt (``recording``), in the attempt's own task;
``http.request`` notes every request made in that task, and in tasks it starts (they inherit
its context, and with it the same list). The create is the default kind; adapters name the
others where they make them (``with kind(LOGIN):``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

# The kinds of request, as the history shows them.
CREATE = "create"
LOGIN = "login"
LOOKUP = "lookup"
TAG_SCAN = "tag_scan"
ACCOUNT = "account"
CUSTOMER = "customer"

_calls: ContextVar[list[dict[str, Any]] | None] = ContextVar("provider_calls", default=None)
_kind: ContextVar[str] = ContextVar("provider_call_kind", default=CREATE)


def recording() -> _Recording:
    """Collect the requests made inside the block (``{"kind", "http_status", "duration_ms"}``
    each, in the order they were answered); outside any block nothing is collected."""
    return _Recording()


class _Recording:
    """``recording``'s block. A class rather than a ``contextmanager``: it wraps every
    attempt, and the generator behind one cost a few microseconds each time."""

    __slots__ = ("_calls", "_token")

    def __init__(self) -> None:
        self._calls: list[dict[str, Any]] = []
        self._token: Token[list[dict[str, Any]] | None] | None = None

    def __enter__(self) -> list[dict[str, Any]]:
        self._token = _calls.set(self._calls)
        return self._calls

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _calls.reset(self._token)
            self._token = None


@contextmanager
def kind(name: str) -> Iterator[None]:
    """Requests made inside the block are of kind ``name`` (not the create)."""
    token = _kind.set(name)
    try:
        yield
    finally:
        _kind.reset(token)


def note(http_status: int | None, seconds: float) -> None:
    """One request answered (``http_status``) or failed without an answer (None)."""
    calls = _calls.get()
    if calls is not None:
        calls.append(
            {"kind": _kind.get(), "http_status": http_status, "duration_ms": round(seconds * 1000)}
        )
