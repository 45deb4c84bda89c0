"""The W3C ``traceparent`` a producer may write with an outbox row (www.w3.org/TR/trace-context).

The outbox's check constraint and ``invoice_sync.enqueue()`` hold every row to this format
(migration 011); ``invoice-sync enqueue`` checks it here first, so a bad line is reported by
number instead of failing its whole chunk's COPY.
"""

from __future__ import annotations

import re

# Version 00 only, lowercase hex: what the specification's version 00 allows, no more.
FORMAT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
ZERO_TRACE_ID = "0" * 32
ZERO_PARENT_ID = "0" * 16
EXPECTED = (
    "expected 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lowercase, "
    "neither id all zeros"
)


def traceparent_problem(value: object) -> str | None:
    """Why ``value`` is not a traceparent the outbox accepts, or None when it is one."""
    if not isinstance(value, str):
        return f"expected a string; {EXPECTED}"
    if FORMAT.fullmatch(value) is None:
        return f"not a W3C traceparent; {EXPECTED}"
    if value[3:35] == ZERO_TRACE_ID or value[36:52] == ZERO_PARENT_ID:
        return "not a W3C traceparent: an all-zero trace id or parent id is invalid"
    return None
