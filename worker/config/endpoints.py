"""Which provider endpoints invoice-sync will call: the check on an account's ``base_url``.

Every request carries the account's token, so ``base_url`` decides where a secret goes. It must
be ``https`` with a host and nothing after the path: a user and password in the URL would be
sent and logged, a query or fragment would be mangled by the path an adapter appends. Plain
``http`` goes only to a loopback host (the sandboxes, a local proxy) unless the account opts in
with ``allow_insecure_http = true``, which is logged as a warning at start.

Messages never repeat the URL: it may hold a password.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

from worker.config.credentials import control_character_problem

EXPECTED = "expected https://HOST[:PORT][/PATH]"


def base_url_problem(url: str, *, allow_insecure_http: bool) -> str | None:
    """What makes ``url`` unusable as a provider's base URL, as one line; None when it is fine."""
    if not url.strip():
        return f"empty ({EXPECTED})"
    if control_character_problem(url) is not None:
        return f"holds a control character ({EXPECTED})"
    if any(char.isspace() for char in url):
        return f"holds a space ({EXPECTED})"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return f"not a URL with a valid port ({EXPECTED})"
    return _parts_problem(url, parts, allow_insecure_http=allow_insecure_http)


def _parts_problem(url: str, parts: SplitResult, *, allow_insecure_http: bool) -> str | None:
    scheme = parts.scheme.lower()
    insecure = scheme == "http" and not allow_insecure_http
    checks = (
        (scheme not in {"https", "http"}, f"not an https URL ({EXPECTED})"),
        (
            "@" in parts.netloc,
            "must not hold a user or password: give the token as token, token_env or token_file",
        ),
        (not parts.hostname, f"has no host ({EXPECTED})"),
        ("?" in url, "must not have a query (?...): adapters append their own paths"),
        ("#" in url, "must not have a fragment (#...)"),
        (
            insecure and not is_loopback(parts.hostname or ""),
            "plain http is for loopback hosts only (127.0.0.0/8, ::1, localhost): use https, "
            "or set allow_insecure_http = true for this account",
        ),
    )
    return next((message for failed, message in checks if failed), None)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: a request there never leaves the machine."""
    # Exactly "localhost": "localhost." is a fully qualified name that a resolver may send to
    # DNS rather than answer from /etc/hosts.
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_host(url: str) -> str | None:
    """The host a plain-http ``url`` sends to when that host is not loopback, else None."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or parts.hostname is None or is_loopback(parts.hostname):
        return None
    return parts.hostname
