"""Reading the console's query strings and forms: filters, bounded text, durations."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from worker.durations import parse_duration
from worker.outcome import Reason
from worker.store.console import DeadLetterSelection

# The most rows one bulk action touches (one transaction): a larger selection is narrowed
# first, or acted on again.
BULK_CAP = 5_000
# Longer query values are no account, key or number this schema can hold.
MAX_TEXT = 200


def query_text(request: web.Request, name: str) -> str | None:
    return bounded(request.query.get(name))


def bounded(value: object) -> str | None:
    """A stripped, non-empty string of at most ``MAX_TEXT`` characters, or None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise web.HTTPBadRequest(text=f"a value over {MAX_TEXT} characters")
    return value


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
    return DeadLetterSelection(
        reason=reason, account=bounded(values.get("account")), older_than=older_than
    )
