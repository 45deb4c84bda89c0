"""The watch's snapshot and renderings, from fixed readouts: no terminal, no database."""

import io

from rich.console import Console

from worker.cli.progress import (
    RateWindow,
    build_snapshot,
    clock,
    percent,
    render_line,
    render_snapshot,
)
from worker.store.stats import Readout

READOUT = Readout(
    pending={"shop": 250, "other": 40},
    running={"shop": 16},
    synced={"shop": 700, "other": 10},
    dead={"shop": {"rejected": 30, "duplicate": 4}, "other": {"credits_expired": 1}},
    paused={"other": "credits_expired"},
    pause_errors={"other": "no credits left"},
)


def text_of(snapshot_readout: Readout, *, rate: float | None = 25.0) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(render_snapshot(build_snapshot(snapshot_readout, elapsed=75, rate=rate)))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_snapshot_totals_are_finished_plus_unfinished() -> None:
    snapshot = build_snapshot(READOUT, elapsed=75, rate=25.0)
    shop = next(a for a in snapshot.accounts if a.account == "shop")
    assert (shop.finished, shop.total) == (734, 1000)
    assert snapshot.total == 1051
    # The ETA covers accounts that flow: the paused account's 40 rows wait for an operator.
    assert snapshot.eta == (250 + 16) / 25.0
    assert not snapshot.drained
    assert snapshot.reasons[0] == ("rejected", 30)


def test_live_view_shows_bars_rate_eta_pauses_and_reasons() -> None:
    text = text_of(READOUT)
    assert "shop" in text
    assert "734/1000" in text
    assert "73.4%" in text
    assert "━" in text  # rich's bar
    assert "rate 25.0/s" in text
    assert "eta 10s" in text
    assert "elapsed 1m15s" in text
    assert "paused: other (credits_expired: no credits left)" in text
    [other_row] = [line for line in text.splitlines() if line.startswith("other")]
    assert other_row.rstrip().endswith("paused: credits_expired")  # the state column: the reason
    assert "rejected=30, duplicate=4, credits_expired=1" in text


def test_plain_line_has_each_account_and_reaches_100_percent_when_done() -> None:
    line = render_line(build_snapshot(READOUT, elapsed=5, rate=None))
    assert "\n" not in line
    assert "shop 734/1000 73.4% pending 250 in flight 16 dead 34" in line
    assert "rate -" in line
    assert "other 11/51 21.5% pending 40 in flight 0 dead 1 paused: credits_expired |" in line
    assert line.endswith(
        "paused: other (credits_expired: no credits left) | dead: rejected=30, duplicate=4, credits_expired=1"
    )
    done = Readout(synced={"shop": 999}, dead={"shop": {"rejected": 1}})
    snapshot = build_snapshot(done, elapsed=40, rate=30.0)
    assert snapshot.drained
    assert "total 1000/1000 100.0%" in render_line(snapshot)


def test_drained_ignores_rows_held_by_paused_accounts() -> None:
    held = Readout(pending={"other": 5}, paused={"other": "operator"})
    snapshot = build_snapshot(held, elapsed=1, rate=None)
    assert snapshot.drained
    assert snapshot.eta == 0.0


def test_empty_readout_renders() -> None:
    assert "nothing pending" in text_of(Readout(), rate=None)
    assert "total 0/0 100.0%" in render_line(build_snapshot(Readout(), elapsed=0, rate=None))


def test_percent_rounds_down_and_clock_formats() -> None:
    assert percent(9999, 10000) == "99.9%"
    assert percent(0, 0) == "100.0%"
    assert [clock(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]


def test_rate_window_slides() -> None:
    window = RateWindow(seconds=10)
    assert window.add(0, 0) is None
    assert window.add(5, 50) == 10.0
    assert window.add(10, 100) == 10.0
    # Past the window the early samples go: the rate follows the recent slowdown.
    assert window.add(20, 110) == 1.0
    assert window.add(21, 111) == (111 - 100) / 11
