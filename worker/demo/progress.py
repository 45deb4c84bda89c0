"""The demo's live view while the worker drains the outbox: per account, how many invoices are
synced, dead-lettered, retrying and in flight, read from the database a few times a second.

It only reads: the worker never knows it is being watched. On a terminal it redraws in place
(``rich``); elsewhere (a pipe, a test) it stays quiet and the summary says it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from worker.demo.plan import DemoPlan
from worker.store.database import Pool
from worker.store.demo import demo_progress

REFRESH = 0.25


@dataclass(kw_only=True)
class Tally:
    """One account's rows in this demo run."""

    synced: int = 0
    dead: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    running: int = 0
    retrying: int = 0
    retried: int = 0
    """Attempts beyond the first, over rows that have finished."""
    recovered: int = 0
    """Synced after an attempt whose answer was lost: a lookup found the invoice."""

    @property
    def done(self) -> int:
        return self.synced + sum(self.dead.values())

    @property
    def waiting(self) -> int:
        return self.pending + self.running + self.retrying


async def read_tallies(pool: Pool, run: str) -> dict[str, Tally]:
    """This run's rows (keys starting with ``run``) by account."""
    rows = await demo_progress(pool, run)
    tallies: dict[str, Tally] = {}
    for row in rows:
        tally = tallies.setdefault(row["account"], Tally())
        kind, detail, count = row["kind"], row["detail"], row["count"]
        if kind == "synced":
            tally.synced = count
            tally.retried += row["retried"]
            tally.recovered = row["recovered"]
        elif kind == "dead":
            tally.dead[detail] = count
            tally.retried += row["retried"]
        else:
            setattr(tally, detail, count)
    return tallies


class ProgressView:
    """Watches a run until ``stop`` is set; ``watch`` is meant to run beside the worker."""

    def __init__(self, pool: Pool, plan: DemoPlan, console: Console) -> None:
        self._pool = pool
        self._plan = plan
        self._console = console
        self._started = time.monotonic()

    async def watch(self, stop: asyncio.Event) -> None:
        if not self._console.is_terminal:
            await stop.wait()
            return
        with Live(self._render({}), console=self._console, auto_refresh=False) as live:
            while not stop.is_set():
                live.update(self._render(await read_tallies(self._pool, self._plan.run)))
                live.refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), REFRESH)
            live.update(self._render(await read_tallies(self._pool, self._plan.run)))
            live.refresh()

    def _render(self, tallies: dict[str, Tally]) -> Group:
        total = len(self._plan.rows)
        done = sum(t.done for t in tallies.values())
        elapsed = max(time.monotonic() - self._started, 0.001)
        head = Text.assemble(
            ("Draining the outbox ", "bold"),
            f"{done}/{total} done in {elapsed:.1f} s ({done / elapsed:.0f} invoices/s)",
        )
        table = Table(box=None, pad_edge=False)
        for column in ("account", "provider", "invoices", "synced", "dead", "retrying", "waiting"):
            table.add_column(
                column, justify="left" if column in {"account", "provider"} else "right"
            )
        table.add_column("", min_width=20)
        for account in self._plan.accounts:
            tally = tallies.get(account.name, Tally())
            rows = self._plan.rows_for(account.name)
            table.add_row(
                account.name,
                account.profile.provider,
                str(rows),
                str(tally.synced),
                str(sum(tally.dead.values())),
                str(tally.retrying),
                str(tally.waiting),
                ProgressBar(total=rows, completed=tally.done, width=20),
            )
        return Group(head, table)
