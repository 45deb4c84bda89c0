"""Plain-text tables and timestamps for the operator commands' output.

Plain columns rather than box drawing: operators pipe this output to ``grep``, ``sort`` and
``awk``, which want one row per line and no decoration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, the header first; no trailing spaces."""
    every = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in every)
    return "\n".join(line.rstrip() for line in lines)


def format_time(moment: datetime | None) -> str:
    """``2026-07-01 12:34:56Z`` (UTC, to the second), or ``-``."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
