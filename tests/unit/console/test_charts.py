"""The overview's chart: one bar a minute, synced under dead, scaled to the busiest minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.console.charts import HEIGHT, minute_chart

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_bars_stack_and_scale_to_the_peak() -> None:
    chart = minute_chart(
        [("synced", NOW, 30), ("dead", NOW, 10), ("synced", NOW - timedelta(minutes=1), 20)],
        last_minute=NOW,
    )
    assert len(chart.bars) == 60
    assert (chart.peak, chart.synced_total, chart.dead_total) == (40, 50, 10)
    last = chart.bars[-1]
    assert last.synced_height == HEIGHT * 30 / 40
    assert last.dead_height == HEIGHT * 10 / 40
    assert last.dead_y + last.dead_height == last.synced_y
    assert chart.bars[-2].synced_height == HEIGHT * 20 / 40
    assert last.label == "12:00 UTC: 30 synced, 10 dead"


def test_minutes_outside_the_hour_are_left_out() -> None:
    chart = minute_chart([("synced", NOW - timedelta(minutes=60), 5)], last_minute=NOW)
    assert chart.peak == 0
    assert all(bar.synced_height == 0 for bar in chart.bars)
