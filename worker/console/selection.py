"""Reading the console's query strings and forms: filters, bounded text, ids, durations.

Whatever PostgreSQL would refuse (a NUL, an id past ``bigint``, a date it cannot hold) is
refused here with a 400 naming the field, so that a typo is never answered as a database
outage (the 503 of ``app.store_errors``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from worker.durations import parse_duration
from worker.outcome import Reason
from worker.store.console import DeadLetterSelection

# The most rows one bulk action touches (one transaction): a larger selection is narrowed
# first, or acted on again.
BULK_CAP = 5_000
# Longer query values are no account, key or number this schema can hold.
MAX_TEXT = 200
# Row ids are PostgreSQL bigints drawn from sequences: 1 to 2^63-1.
MAX_ID = 2**63 - 1
# A filter reaching back further than this is a typo; much further and now() minus it is
# before the first date PostgreSQL can hold.
MAX_OLDER_THAN = 100 * 365 * 86400.0


def query_text(request: web.Request, name: str) -> str | None:
    return bounded(request.query.get(name))


def bounded(value: object) -> str | None:
    """A stripped, non-empty string of at most ``MAX_TEXT`` characters, or None; a 400 for a
    longer one or one holding a NUL (PostgreSQL's text cannot hold one). Other control
    characters pass: the outbox does not forbid them in keys, and a key holding a tab must still
    be found, opened and paged past."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise web.HTTPBadRequest(text=f"a value over {MAX_TEXT} characters")
    if "\x00" in value:
        raise web.HTTPBadRequest(text="a value holds a NUL character")
    return value


def refuse_control_characters(value: str) -> None:
    """A 400 when ``value`` holds a control character (never echoed: it may be anything)."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise web.HTTPBadRequest(text="a value holds a control character")


def row_id(text: str | None, what: str) -> int:
    """``text`` as a row id (ASCII digits, 1 to 2^63-1); a 400 naming ``what`` otherwise."""
    # isdecimal() alone passes other scripts' digits, which int() reads; isdigit() passes
    # superscripts, which it does not.
    if text and len(text) <= 19 and text.isascii() and text.isdecimal():
        value = int(text)
        if 1 <= value <= MAX_ID:
            return value
    raise web.HTTPBadRequest(text=f"{what}: a whole number from 1 to {MAX_ID}")


def dead_letter_cursor(text: str | None) -> tuple[datetime, int] | None:
    """The dead-letter page's ``after`` (``dead_at~id``, as the page writes it), or None."""
    if not text:
        return None
    when, _, dead_id = text.rpartition("~")
    unwritten = web.HTTPBadRequest(text="a page cursor the console did not write")
    try:
        dead_at = datetime.fromisoformat(when)
        # The page writes a time with its offset, and it must be a time in UTC too
        # (0001-01-01T00:00+14:00 is not).
        in_utc = dead_at.astimezone(UTC) if dead_at.tzinfo is not None else None
    except (ValueError, OverflowError) as exc:
        raise unwritten from exc
    if in_utc is None:
        raise unwritten
    return in_utc, row_id(dead_id, "the page cursor's id")


def dead_letter_selection(values: Mapping[str, object]) -> DeadLetterSelection:
    """The filter of the dead-letter page and of a bulk action: reason, account, older than."""
    reason = bounded(values.get("reason"))
    if reason is not None and reason not in set(Reason):
        raise web.HTTPBadRequest(text="reason: not a reason code")
    older = bounded(values.get("older_than"))
    try:
        older_than = parse_duration(older) if older else None
    except ValueError as exc:
        raise web.HTTPBadRequest(text="older_than: a duration such as 2h or 3d") from exc
    if older_than is not None and older_than > MAX_OLDER_THAN:
        raise web.HTTPBadRequest(text="older_than: at most 100 years (36500d)")
    return DeadLetterSelection(
        reason=reason, account=bounded(values.get("account")), older_than=older_than
    )
