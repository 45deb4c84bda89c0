"""Cutting a secret out of an outcome before it reaches tables and logs."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from worker.outcome import Outcome

REDACTED = "[redacted]"


def scrubbed(outcome: Outcome, secret: str) -> Outcome:
    """The outcome with ``secret`` cut out of every text it carries (also a nested ``invoice``).

    Providers are not known to echo tokens, but outcomes are written to tables and logs that
    outlive the token's secrecy, so a server (or proxy) that echoes one must not leak it.
    """
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(outcome):
        value = getattr(outcome, field.name)
        if isinstance(value, str) and secret in value:
            changes[field.name] = value.replace(secret, REDACTED)
        elif field.name == "response" and value is not None:
            text = json.dumps(value, default=str)
            if secret in text:
                changes[field.name] = json.loads(text.replace(secret, REDACTED))
        elif field.name == "invoice":
            changes[field.name] = scrubbed(value, secret)
    return dataclasses.replace(outcome, **changes) if changes else outcome
