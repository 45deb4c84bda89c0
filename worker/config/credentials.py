"""Secret values read from the config, the environment or a file, checked before any use.

A secret travels in an HTTP header (tokens) or a request body (Refrens' app secret): one with a
line break or another control character would be refused by aiohttp at send time, or worse,
split a header. So it is refused here, while the configuration loads, with a message that names
where the value came from and never shows any of it.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from pydantic import SecretStr

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class UnusableSecretError(ValueError):
    """A secret value cannot be used; the message says where it came from, never what it is."""


def control_character_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a one-line value, or None (the value is never echoed)."""
    for char in value:
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            kind = "a line break" if char in "\r\n\u2028\u2029" else "a control character"
            return f"holds {kind} (U+{ord(char):04X}); a control character has no place in it"
    return None


def checked_secret(value: str, source: str) -> SecretStr:
    """``value`` stripped of surrounding whitespace, as a ``SecretStr``; ``UnusableSecretError``
    (naming ``source``, e.g. ``token_file /run/secrets/x``) when it is empty or holds a control
    character."""
    stripped = value.strip()
    if not stripped:
        raise UnusableSecretError(f"{source} is empty")
    problem = control_character_problem(stripped)
    if problem is not None:
        raise UnusableSecretError(f"{source} {problem}")
    return SecretStr(stripped)


def secret_from_env(variable: str, key: str) -> SecretStr:
    """The secret in environment variable ``variable`` (configured under ``key``)."""
    value = os.environ.get(variable)
    if not value:
        raise UnusableSecretError(f"{key}: environment variable {variable} is not set")
    return checked_secret(value, f"{key}: environment variable {variable}")


def secret_from_file(path: Path, key: str) -> SecretStr:
    """The secret in file ``path`` (configured under ``key``): UTF-8, one line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableSecretError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnusableSecretError(f"{key}: {path} is not UTF-8 (byte {exc.start})") from exc
    return checked_secret(text, f"{key}: {path}")
