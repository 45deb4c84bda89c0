"""The overview's charts, drawn on the server as SVG geometry the template writes out.

A bar per minute for the last hour: synced stacked under dead-lettered, so a backlog that stops
draining shows as bars shrinking to nothing, and failures as the red tops growing, without
reading a number. Pure functions of the counts and the clock's minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH = 360
HEIGHT = 80


@dataclass(frozen=True, kw_only=True, slots=True)
class Bar:
    x: float
    width: float
    synced_y: float
    synced_height: float
    dead_y: float
    dead_height: float
    label: str  # "14:05 UTC: 12 synced, 1 dead"


@dataclass(frozen=True, kw_only=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    peak: int
    synced_total: int
    dead_total: int
    width: int = WIDTH
    height: int = HEIGHT


def minute_chart(
    counts: Iterable[tuple[str, datetime, int]], *, last_minute: datetime, minutes: int = 60
) -> Chart:
    """``counts`` as (kind, minute, count) with kind ``synced`` or ``dead``; ``last_minute``
    the current minute (truncated), the chart's right-hand bar."""
    first = last_minute - timedelta(minutes=minutes - 1)
    synced = [0] * minutes
    dead = [0] * minutes
    for kind, minute, count in counts:
        index = int((minute - first).total_seconds() // 60)
        if 0 <= index < minutes:
            (synced if kind == "synced" else dead)[index] += count
    peak = max((s + d for s, d in zip(synced, dead, strict=True)), default=0)
    scale = HEIGHT / peak if peak else 0.0
    step = WIDTH / minutes
    bars = []
    for i in range(minutes):
        synced_height = synced[i] * scale
        dead_height = dead[i] * scale
        minute = first + timedelta(minutes=i)
        bars.append(
            Bar(
                x=round(i * step, 2),
                width=round(step * 0.8, 2),
                synced_y=round(HEIGHT - synced_height, 2),
                synced_height=round(synced_height, 2),
                dead_y=round(HEIGHT - synced_height - dead_height, 2),
                dead_height=round(dead_height, 2),
                label=f"{minute:%H:%M} UTC: {synced[i]} synced, {dead[i]} dead",
            )
        )
    return Chart(bars=tuple(bars), peak=peak, synced_total=sum(synced), dead_total=sum(dead))
