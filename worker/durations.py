"""Parsing of the human-written quantities in config: durations and rate limits."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
# One row per unit: its spellings side by side (ruff format would put one per line).
_RATE_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
}  # fmt: skip


def parse_duration(value: object) -> float:
    """``"30s"``, ``"5m"``, ``"250ms"``, ``"1h"``, ``"2d"`` or a number of seconds, as seconds.

    Raises ``ValueError`` for anything else (pydantic turns only ``ValueError`` into a
    validation error naming the key; any other exception would escape as a traceback).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif not isinstance(value, str):
        raise ValueError("expected a duration such as '30s' or '5m'")  # noqa: TRY004 - pydantic reports only ValueError
    else:
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration such as '30s', '5m', '250ms' or '1h'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError("a duration must be finite")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def spoken_duration(seconds: float) -> str:
    """``seconds`` in the largest unit that holds it whole: ``"7d"``, ``"1s"``, ``"10ms"``."""
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == round(count):
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def duration_within(seconds: float, low: float, high: float) -> float:
    """``seconds`` when it is from ``low`` to ``high``; ``ValueError`` saying the range
    otherwise (a lease of 0 expires at once; one of 10^20 days is past any timestamp)."""
    if not low <= seconds <= high:
        raise ValueError(
            f"must be from {spoken_duration(low)} to {spoken_duration(high)}, "
            f"not {spoken_duration(seconds)}"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``count`` requests per ``period`` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        return f"{self.count:g}/{self.period:g}s"


def parse_rate(value: object) -> RateLimit:
    """``"60/minute"``, ``"10/s"``, ``"1000/hour"``, ``"5/10s"``; ``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise ValueError("expected a rate such as '60/minute' or '10/second'")  # noqa: TRY004 - pydantic reports only ValueError
    match = _RATE.match(value.lower())
    if match is None or match.group(3) not in _RATE_UNITS:
        raise ValueError(f"{value!r} is not a rate such as '60/minute' or '10/second'")
    count = float(match.group(1))
    period = float(match.group(2) or 1) * _RATE_UNITS[match.group(3)]
    if count <= 0 or period <= 0:
        raise ValueError("a rate must be positive")
    return RateLimit(count=count, period=period)
