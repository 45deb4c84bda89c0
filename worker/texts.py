"""``cut``: the one way a text is shortened, and ``CUT``, the mark it then ends in.

Below the providers and the policy both: an adapter cuts a provider's message, the policy a
provider's id, and the redaction (``worker.providers.redaction``) knows by the mark where a
secret may have been split by a cut.
"""

from __future__ import annotations

CUT = "\u2026"
"""Ends every text cut short (``cut``), so a later scrub knows where a secret may be split."""


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with ``CUT`` when anything was cut off."""
    return text if len(text) <= limit else text[:limit] + CUT
