"""Cutting secrets out of an outcome before it reaches tables and logs (every adapter)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from worker.outcome import Outcome

REDACTED = "[redacted]"


def scrubbed(outcome: Outcome, secrets: str | Iterable[str]) -> Outcome:
    """The outcome with every secret cut out of every text it carries (also a nested
    ``invoice``): a static token, an app secret, the tokens a login issued.

    Providers are not known to echo credentials, but outcomes are written to tables and logs
    that outlive a credential's secrecy, so a server (or proxy) that echoes one must not leak it.
    """
    wanted = [secrets] if isinstance(secrets, str) else list(secrets)
    # Longest first, so a secret that contains another is cut whole.
    cut = sorted((s for s in wanted if s), key=len, reverse=True)
    return _scrubbed(outcome, cut) if cut else outcome


def _scrubbed(outcome: Outcome, secrets: list[str]) -> Outcome:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(outcome):
        value = getattr(outcome, field.name)
        if isinstance(value, str):
            cleaned = _cut(value, secrets)
            if cleaned != value:
                changes[field.name] = cleaned
        elif field.name == "response" and value is not None:
            text = json.dumps(value, default=str)
            cleaned = _cut(text, secrets)
            if cleaned != text:
                changes[field.name] = json.loads(cleaned)
        elif field.name == "invoice":
            changes[field.name] = _scrubbed(value, secrets)
    return dataclasses.replace(outcome, **changes) if changes else outcome


def _cut(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
