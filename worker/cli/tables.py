"""Plain-text tables and timestamps for the operator commands' output.

Plain columns rather than box drawing: operators pipe this output to ``grep``, ``sort`` and
``awk``, which want one row per line and no decoration.

Text from the database (account names and keys producers wrote, provider error messages) is not
ours: every printer passes it through ``printable``, so a control character shows as an
escape rather than driving the operator's terminal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

# C0 (ESC among them), DEL, C1 (CSI among them) and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(value: object, *, lines: bool = False) -> str:
    """``value`` as text a terminal shows and does not obey: each control character written as
    its escape (``\\x1b``, ``\\t``, ``\\n``), so a provider's ``ESC ]0;...`` cannot retitle,
    clear or rewrite the screen. ``lines`` keeps ``\\n`` for a field meant to span lines."""
    pattern = _CONTROLS_BUT_NEWLINE if lines else _CONTROLS
    return pattern.sub(_escaped, str(value))


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, the header first; no trailing spaces. Every cell
    is made ``printable``."""
    every = [list(header), *([printable(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in every)
    return "\n".join(line.rstrip() for line in lines)


def format_time(moment: datetime | None) -> str:
    """``2026-07-01 12:34:56Z`` (UTC, to the second), or ``-``."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
