"""``GET /businesses/:urlKey/invoices`` in the Refrens sandbox: a Feathers ``find``.

Query parameters as the document lists them (``$limit``, ``$skip``, ``$sort[field]=1|-1``) plus
Feathers' field filters (``?invoiceNumber=X``, equality on a top-level field), which Refrens
does not document: the ``ignore_filters`` option makes them do nothing, as a server that does
not support them may; ``refuse_filters`` answers them 400 BadRequest, as a server that accepts
only the documented parameters would. ``$limit`` defaults to ``default_limit`` and is capped at ``max_limit``
(Feathers' ``paginate`` settings); the answer is ``{total, limit, skip, data}``. Without
``$sort`` invoices come in creation order; ties (same ``createdAt``) keep creation order too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from worker.testing.sandbox.refrens.errors import FeathersError

_SORT = re.compile(r"^\$sort\[([A-Za-z_][A-Za-z0-9_.]*)\]$")
KNOWN_OPERATORS = ("$limit", "$skip", "$select")


def find(
    records: list[dict[str, Any]],
    query: Mapping[str, str],
    *,
    default_limit: int,
    max_limit: int,
    ignore_filters: bool,
    refuse_filters: bool = False,
) -> dict[str, Any]:
    """One page of ``records`` (oldest first) for ``query``; 400 BadRequest for a bad one."""
    limit = min(_count(query, "$limit", default_limit), max_limit)
    skip = _count(query, "$skip", 0)
    sorts: list[tuple[str, int]] = []
    filters: dict[str, str] = {}
    for key, value in query.items():
        sort = _SORT.match(key)
        if sort is not None:
            sorts.append((sort.group(1), _direction(key, value)))
        elif key.startswith("$") and key not in KNOWN_OPERATORS:
            raise FeathersError(400, f"Invalid query parameter {key}")
        elif not key.startswith("$"):
            if refuse_filters:
                raise FeathersError(400, f"Invalid query parameter {key}")
            filters[key] = value
    ordered = list(enumerate(records))
    if not ignore_filters:
        ordered = [(i, r) for i, r in ordered if _matches(r, filters)]
    # Stable sorts applied last key first give a multi-key sort; creation order breaks ties.
    for name, direction in reversed(sorts):
        ordered.sort(key=functools.partial(_sort_key, name=name), reverse=direction < 0)
    data = [record for _, record in ordered[skip : skip + limit]]
    return {"total": len(ordered), "limit": limit, "skip": skip, "data": data}


def _count(query: Mapping[str, str], key: str, default: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FeathersError(400, f"Invalid query parameter {key}: {raw!r}") from None
    if value < 0:
        raise FeathersError(400, f"Invalid query parameter {key}: {raw!r}")
    return value


def _direction(key: str, value: str) -> int:
    if value.strip() in ("1", "-1"):
        return int(value)
    raise FeathersError(400, f"Invalid query parameter {key}: sort order must be 1 or -1")


def _matches(record: dict[str, Any], filters: dict[str, str]) -> bool:
    return all(str(record.get(key)) == value for key, value in filters.items())


def _sort_key(pair: tuple[int, dict[str, Any]], name: str) -> tuple[str, int]:
    index, record = pair
    # createdAt has millisecond resolution; two invoices in one millisecond keep their order.
    value = record.get(name)
    return ("" if value is None else str(value), index)
