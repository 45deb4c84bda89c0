"""``cut``: the one way a text is shortened, and ``CUT``, the mark it then ends in; and
``web_address``, what a provider's link must be to be kept and shown as one.

Below the providers and the policy both: an adapter cuts a provider's message, the policy a
provider's id, and the redaction (``worker.providers.redaction``) knows by the mark where a
secret may have been split by a cut.
"""

from __future__ import annotations

import re

CUT = "\u2026"
"""Ends every text cut short (``cut``), so a later scrub knows where a secret may be split."""


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with ``CUT`` when anything was cut off."""
    return text if len(text) <= limit else text[:limit] + CUT


# Literally at the start: a browser skips leading spaces and controls, and "java\tscript:" is
# JavaScript to it, so nothing but these two schemes, first, makes a link.
_WEB = re.compile(r"https?://[^\x00-\x20\x7f]", re.IGNORECASE)


def web_address(text: str) -> bool:
    """Whether ``text`` is an http or https address: what a provider's invoice link or PDF
    address must be to be stored, and shown on the console as a link (a ``javascript:`` one
    from a hostile provider would run on the operator's click)."""
    return _WEB.match(text) is not None
