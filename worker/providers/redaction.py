"""Cutting secrets out of provider answers and outcomes before they reach tables and logs.

Two passes, both over every adapter: the HTTP seam scrubs each answer (its raw text and its
parsed values) before anything reads or cuts it, and each adapter scrubs the outcome it returns
(errors built from exception texts, a nested ``invoice``). Text is only ever cut by ``cut``
(``worker.texts``),
which marks the cut with ``CUT``; a prefix of a secret just before that mark (a secret the cut
fell inside) is removed too, whatever its length.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from worker.outcome import Outcome
from worker.texts import CUT

REDACTED = "[redacted]"
# A run of this many characters of a secret's start, or more, is cut wherever it appears (ASCII
# text): a server or proxy that shortens what it echoes ("Sk+Live/9f8e7d6c...") leaks no prefix.
HEAD = 8  # and half the secret (``shortest_run``)
# What ``json.dumps(..., ensure_ascii=False)`` writes otherwise than as itself.
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
# One encoder for every check: ``json.dumps`` with any option builds a new one each call.
_AS_WRITTEN = json.JSONEncoder(ensure_ascii=False)


def secrets_to_cut(secrets: str | Iterable[str]) -> list[str]:
    """The non-empty secrets, and each as a URL's query would carry it (percent-encoded: a
    server echoing the request it refused), longest first, so a secret that contains another
    is cut whole."""
    wanted = [secrets] if isinstance(secrets, str) else list(secrets)
    present = {s for s in wanted if s}
    encoded = {quote(s, safe="") for s in present} | {quote(s) for s in present}
    return sorted(present | encoded, key=len, reverse=True)


def scrub_text(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any of ``secrets`` (longest first), nor a prefix of one ending at a
    ``CUT`` mark."""
    for secret in secrets:
        text = _without_whole(text, secret)
    if CUT in text:
        for secret in secrets:
            text = _without_prefix_at_cuts(text, secret)
    return text


def scrub_value(value: Any, secrets: Sequence[str]) -> Any:
    """A parsed JSON value with every string in it (keys too) scrubbed."""
    if isinstance(value, dict | list) and secrets and _holds_none(value, secrets):
        return value
    return _scrub_each(value, secrets)


def holds_none(text: str, secrets: Sequence[str]) -> bool:
    """True when ``text`` holds none of ``secrets`` (in any case) and no ``CUT`` mark: neither
    it nor any part of it has anything for ``scrub_text`` to change."""
    if CUT in text:
        return False
    if text.isascii():
        # ASCII text against an ASCII secret, ignoring case, is ``re.IGNORECASE``'s match
        # (only non-ASCII letters fold onto ASCII ones: the Kelvin sign onto k), at a
        # fraction of the cost: a pattern without case cannot use the literal fast search.
        # The secret's start stands for it: a run of it is cut too (``HEAD``).
        folded = text.lower()
        return not any(
            secret[:HEAD].lower() in folded if secret.isascii() else _whole(secret).search(text)
            for secret in secrets
        )
    return not any(_whole(secret).search(text) for secret in secrets)


def _holds_none(value: dict[Any, Any] | list[Any], secrets: Sequence[str]) -> bool:
    """True when no string in ``value`` has anything to scrub, judged from its JSON text in
    one search, not string by string (an answer's dozen strings cost more walked than
    dumped). Sound because, written with ``ensure_ascii=False``, every string appears in the
    text as itself except for the characters JSON escapes (quote, backslash, controls); a
    secret holding one of those, or a value JSON cannot write, takes the walk."""
    if any(_JSON_ESCAPED.search(secret) for secret in secrets):
        return False
    try:
        text = _AS_WRITTEN.encode(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return holds_none(text, secrets)


def _scrub_each(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {_scrub_each(k, secrets): _scrub_each(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_each(item, secrets) for item in value]
    return value


def scrubbed(outcome: Outcome, secrets: str | Iterable[str]) -> Outcome:
    """The outcome with every secret cut out of every text it carries (also a nested
    ``invoice``): a static token, an app secret, the tokens a login issued.

    Providers are not known to echo credentials, but outcomes are written to tables and logs
    that outlive a credential's secrecy, so a server (or proxy) that echoes one must not leak it.
    """
    wanted = secrets_to_cut(secrets)
    return _scrubbed(outcome, wanted) if wanted else outcome


def _scrubbed(outcome: Outcome, secrets: list[str]) -> Outcome:
    # Most outcomes hold nothing to scrub: one check of all their texts together says so.
    if _holds_none(_texts_of(outcome), secrets):
        return outcome
    changes: dict[str, Any] = {}
    for name in _field_names(type(outcome)):
        value = getattr(outcome, name)
        if name == "invoice":
            cleaned = _scrubbed(value, secrets)
        elif isinstance(value, str) or name == "response":
            cleaned = scrub_value(value, secrets)
        else:
            continue
        if cleaned != value:
            changes[name] = cleaned
    return dataclasses.replace(outcome, **changes) if changes else outcome


def _texts_of(outcome: Outcome) -> list[Any]:
    """What ``_scrubbed`` would scrub in ``outcome``: its texts and response, the nested
    invoice's too."""
    texts: list[Any] = []
    for name in _field_names(type(outcome)):
        value = getattr(outcome, name)
        if name == "invoice":
            texts += _texts_of(value)
        elif isinstance(value, str) or name == "response":
            texts.append(value)
    return texts


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    # Once per outcome type, not per outcome: every attempt's outcome comes through here.
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(kind))
    return names


# Secrets are matched without case: an echo may change it (a URL's host is lowercased, for
# one), and many tokens (hex, GUIDs) are the same credential in any case. Bounded: issued
# tokens (a Refrens login's) change over a long run.
@lru_cache(maxsize=256)
def _whole(secret: str) -> re.Pattern[str]:
    return re.compile(re.escape(secret), re.IGNORECASE)


def _without_whole(text: str, secret: str) -> str:
    """``text`` with every ``secret``, in any case, replaced by ``REDACTED``, and in ASCII text
    every run of the secret's start at least ``shortest_run`` long (an echo cut short). ASCII
    against ASCII (``CUT`` marks aside, which have no case) by a search of the lowered text:
    the pattern's case-blind search compares at every position, and a near miss on every one
    (a long token against an answer that repeats most of it) made it quadratic. Other text
    keeps the pattern, which also folds the few non-ASCII letters that match ASCII ones."""
    if not (secret.isascii() and (text.isascii() or text.replace(CUT, "").isascii())):
        return _whole(secret).sub(REDACTED, text)
    # Whole occurrences first: a run of the start found first could swallow the beginning of
    # a whole one (a secret whose start repeats) and leave its tail.
    wanted = secret.lower()
    folded = text.lower()
    at = folded.find(wanted)
    if at != -1:
        parts, done = [], 0
        while at != -1:
            parts += [text[done:at], REDACTED]
            done = at + len(wanted)
            at = folded.find(wanted, done)
        parts.append(text[done:])
        text = "".join(parts)
    return _replace_runs(text, wanted, shortest_run(secret))


def shortest_run(secret: str) -> int:
    """The shortest run of a secret's start cut as the secret: half of it, from ``HEAD`` up to
    64 characters. Shorter would cut what other values share with it (every JWT begins with the
    same 36-character header, and a signed link may hold another one)."""
    return min(len(secret), max(HEAD, min(len(secret) // 2, 64)))


def _replace_runs(text: str, wanted: str, shortest: int) -> str:
    """``text`` with each run of ``wanted``'s start (lowered) at least ``shortest`` long
    replaced by ``REDACTED``, each as long as the text goes on as ``wanted`` does."""
    folded = text.lower()
    head = wanted[:HEAD]
    at = folded.find(head)
    if at == -1:
        return text
    parts, done = [], 0
    while at != -1:
        # As far as the text goes on as the secret does (the whole of it at most), found by
        # halving: a comparison per character would be a Python loop over the answer.
        low, high = len(head), min(len(wanted), len(folded) - at)
        while low < high:
            middle = (low + high + 1) // 2
            if folded.startswith(wanted[:middle], at):
                low = middle
            else:
                high = middle - 1
        if low >= shortest:
            parts += [text[done:at], REDACTED]
            done = at + low
        # On past the run, cut or not: a text repeating most of the secret stays linear.
        at = folded.find(head, at + low)
    parts.append(text[done:])
    return "".join(parts)


def _without_prefix_at_cuts(text: str, secret: str) -> str:
    """Each ``CUT`` mark with the longest start of ``secret`` just before it removed."""
    pieces = text.split(CUT)
    for index, piece in enumerate(pieces[:-1]):
        pieces[index] = _without_trailing_prefix(piece, secret)
    return CUT.join(pieces)


def _without_trailing_prefix(piece: str, secret: str) -> str:
    # Longest first: "abc…" must not become "ab[redacted]…" by way of "c…".
    longest = min(len(piece), len(secret) - 1)
    if longest <= 0:
        return piece
    tail, start = piece[len(piece) - longest :], secret[:longest]
    if tail.isascii() and start.isascii():
        # Lowered once, and only where the secret's first character is: a comparison per
        # length, each lowering its slices, was quadratic in the piece (a 150 KB answer cut
        # beside a 150 KB secret held the event loop for half a minute).
        tail, start = tail.lower(), start.lower()
        at = tail.find(start[:1])
        while at != -1:
            if start.startswith(tail[at:]):
                return piece[: len(piece) - (longest - at)] + REDACTED
            at = tail.find(start[:1], at + 1)
        return piece
    for length in range(longest, 0, -1):
        if piece[-length:].lower() == secret[:length].lower():
            return piece[:-length] + REDACTED
    return piece
