"""The database's URL: its check, the password it holds (for redaction), and reading it from a
file (``database_url_file``), so Kubernetes and systemd can pass the password as a file.

Messages never repeat the URL: it may hold a password.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

from worker.config.credentials import (
    UnusableSecretError,
    control_character_problem,
    secret_from_file,
)

EXPECTED = "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
# What asyncpg (and libpq) accept; anything else fails only when the first connection is made.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def dsn_problem(dsn: str) -> str | None:
    """What makes ``dsn`` unusable, as one line; None when it is fine."""
    # urlsplit drops tabs and line breaks silently; the driver would not. Nor may one hide
    # percent-encoded (db%00): the driver decodes it into its start-up packet, which the server
    # then refuses as malformed.
    if control_character_problem(dsn) is not None or control_character_problem(unquote(dsn)):
        return f"holds a control character, plain or percent-encoded ({EXPECTED})"
    try:
        parts = urlsplit(dsn.strip())
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return f"not a valid URL ({EXPECTED})"
    if parts.scheme not in ("postgresql", "postgres"):
        return f"not a PostgreSQL URL ({EXPECTED})"
    for mode in parse_qs(parts.query, keep_blank_values=True).get("sslmode", []):
        if mode not in SSLMODES:
            return f"sslmode must be one of {', '.join(SSLMODES)}"
    return None


def dsn_passwords(dsn: str) -> list[str]:
    """The password ``dsn`` holds, if any, for log redaction."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return []
    return [password] if password else []


def read_dsn_file(path: Path) -> SecretStr:
    """The URL in ``path`` (one line of UTF-8), checked; ``ValueError`` saying what is wrong
    (without the URL), for the key ``database_url_file``."""
    try:
        dsn = secret_from_file(path, "database_url_file")
    except UnusableSecretError as exc:
        raise ValueError(str(exc).removeprefix("database_url_file: ")) from exc
    problem = dsn_problem(dsn.get_secret_value())
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    return dsn


def dsn_location(dsn: str) -> str:
    """Where the database is, ``host:port/name``, to show an operator: never the user or the
    password, nor query options."""
    try:
        parts = urlsplit(dsn.strip())
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError:
        return "(unreadable URL)"
    name = parts.path.lstrip("/") or "(default)"
    return f"{host}:{port}/{name}"
