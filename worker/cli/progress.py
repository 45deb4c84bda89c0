"""What ``status --watch`` shows: a snapshot of a draining load, and its two renderings.

Everything here is pure: a ``Readout`` (counts the database gave) and the clock go in, a
``WatchSnapshot`` comes out, and rendering is a function of the snapshot alone, so the view is
tested without a terminal. ``render_snapshot`` is the live view (``rich``) for a TTY;
``render_line`` is one plain line per refresh for logs and pipes.

Progress per account is finished / total, where finished counts rows synced or dead-lettered
since the watch began and total is finished + still unfinished. That equals "unfinished at the
start + enqueued since" without having to count what was enqueued.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.cli.tables import printable
from worker.store.stats import Readout

if TYPE_CHECKING:
    from rich.console import RenderableType

# Accounts listed in the one-line rendering before it says "and N more".
LINE_ACCOUNTS = 8
TOP_REASONS = 5


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountProgress:
    account: str
    synced: int
    dead: int
    pending: int
    running: int
    paused: str | None

    @property
    def finished(self) -> int:
        return self.synced + self.dead

    @property
    def total(self) -> int:
        return self.finished + self.pending + self.running


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchSnapshot:
    """One refresh of the watch. ``rate`` is rows finished per second over the sliding window
    (None until two readings exist); ``eta`` the seconds left for accounts not paused;
    ``paused`` each paused account with its reason and error (the table shows the reason)."""

    elapsed: float
    accounts: tuple[AccountProgress, ...]
    rate: float | None
    eta: float | None
    reasons: tuple[tuple[str, int], ...]
    paused: tuple[tuple[str, str], ...]

    @property
    def finished(self) -> int:
        return sum(a.finished for a in self.accounts)

    @property
    def total(self) -> int:
        return sum(a.total for a in self.accounts)

    @property
    def flowing(self) -> int:
        """Rows pending or in flight in accounts that are not paused."""
        return sum(a.pending + a.running for a in self.accounts if a.paused is None)

    @property
    def drained(self) -> bool:
        """Nothing pending or in flight but what paused accounts hold (as ``run --drain``)."""
        return self.flowing == 0


class RateWindow:
    """Rows finished per second over the last ``seconds``, from (clock, finished) samples."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, finished: int) -> float | None:
        """Record a sample; the rate since the oldest sample still in the window."""
        self._samples.append((now, finished))
        # Keep one sample at or before the window's start, so the window is always covered.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.seconds:
            self._samples.popleft()
        first_at, first = self._samples[0]
        if now <= first_at:
            return None
        return max(finished - first, 0) / (now - first_at)


def build_snapshot(readout: Readout, *, elapsed: float, rate: float | None) -> WatchSnapshot:
    names = sorted(
        set(readout.pending) | set(readout.running) | set(readout.synced) | set(readout.dead)
    )
    accounts = tuple(
        AccountProgress(
            account=name,
            synced=readout.synced.get(name, 0),
            dead=sum(readout.dead.get(name, {}).values()),
            pending=readout.pending.get(name, 0),
            running=readout.running.get(name, 0),
            paused=readout.paused.get(name),
        )
        for name in names
    )
    reasons: dict[str, int] = {}
    for by_reason in readout.dead.values():
        for reason, count in by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + count
    flowing = sum(a.pending + a.running for a in accounts if a.paused is None)
    return WatchSnapshot(
        elapsed=elapsed,
        accounts=accounts,
        rate=rate,
        eta=_eta(flowing, rate),
        reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]),
        paused=tuple(
            (
                name,
                f"{reason}: {readout.pause_errors[name]}"
                if name in readout.pause_errors
                else reason,
            )
            for name, reason in sorted(readout.paused.items())
        ),
    )


def _eta(flowing: int, rate: float | None) -> float | None:
    if flowing == 0:
        return 0.0
    return flowing / rate if rate else None


def render_snapshot(snapshot: WatchSnapshot) -> RenderableType:
    """The live view: a bar per account, then rate, ETA, pauses and dead-letter reasons."""
    # rich only here: the other commands load this module and need none of it.
    from rich.console import Group  # noqa: PLC0415
    from rich.progress_bar import ProgressBar  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("account", "progress", "done", "%", "pending", "in flight", "dead", "state"):
        table.add_column(column, justify="left" if column in {"account", "state"} else "right")
    for a in snapshot.accounts:
        table.add_row(
            Text(printable(a.account)),
            ProgressBar(total=max(a.total, 1), completed=a.finished, width=30),
            f"{a.finished}/{a.total}",
            percent(a.finished, a.total),
            str(a.pending),
            str(a.running),
            str(a.dead),
            Text(printable(f"paused: {a.paused}")) if a.paused else "active",
        )
    parts: list[RenderableType] = [table, Text(summary(snapshot))]
    if snapshot.paused:
        parts.append(Text(printable(f"paused: {paused(snapshot)}"), style="yellow"))
    if snapshot.reasons:
        parts.append(Text(f"dead letters since the watch began: {reasons(snapshot)}"))
    if not snapshot.accounts:
        parts.append(Text("nothing pending, in flight or finished since the watch began"))
    return Group(*parts)


def render_line(snapshot: WatchSnapshot) -> str:
    """One plain line: the totals, then each account (the first ``LINE_ACCOUNTS``)."""
    fields = [summary(snapshot)]
    for a in snapshot.accounts[:LINE_ACCOUNTS]:
        state = f" paused: {printable(a.paused)}" if a.paused else ""
        fields.append(
            f"{printable(a.account)} {a.finished}/{a.total} {percent(a.finished, a.total)} "
            f"pending {a.pending} in flight {a.running} dead {a.dead}{state}"
        )
    if len(snapshot.accounts) > LINE_ACCOUNTS:
        fields.append(f"and {len(snapshot.accounts) - LINE_ACCOUNTS} more accounts")
    if snapshot.paused:
        fields.append(f"paused: {printable(paused(snapshot))}")
    if snapshot.reasons:
        fields.append(f"dead: {reasons(snapshot)}")
    return " | ".join(fields)


def summary(snapshot: WatchSnapshot) -> str:
    rate = "-" if snapshot.rate is None else f"{snapshot.rate:.1f}/s"
    eta = "-" if snapshot.eta is None else clock(snapshot.eta)
    return (
        f"total {snapshot.finished}/{snapshot.total} "
        f"{percent(snapshot.finished, snapshot.total)}  rate {rate}  eta {eta}  "
        f"elapsed {clock(snapshot.elapsed)}"
    )


def paused(snapshot: WatchSnapshot) -> str:
    return ", ".join(f"{name} ({why})" for name, why in snapshot.paused)


def reasons(snapshot: WatchSnapshot) -> str:
    return ", ".join(f"{reason}={count}" for reason, count in snapshot.reasons)


def percent(done: int, total: int) -> str:
    """Rounded down, so 100.0% means every row is finished; nothing to do counts as done."""
    if total <= 0:
        return "100.0%"
    return f"{math.floor(done * 1000 / total) / 10:.1f}%"


def clock(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h02m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
