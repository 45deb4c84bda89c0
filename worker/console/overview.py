"""The overview page's figures per account, gathered from the store's bounded reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.console.charts import Chart, minute_chart
from worker.store.accounts import AccountState, AccountStore
from worker.store.console import ConsoleStore, RateBudget
from worker.store.database import Pool
from worker.store.stats import StatsStore

# Pending rows are counted up to this many per account: beyond it the page says "over".
PENDING_CAP = 10_000
CHART_MINUTES = 60


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfiguredAccount:
    """What the config says of an account, without its credentials."""

    provider: str
    rate_limit: str
    concurrency: int


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountView:
    name: str
    configured: ConfiguredAccount | None
    pending: int
    pending_capped: bool
    running: int
    waiting_seconds: float | None
    dead: Mapping[str, int]
    cancelled: int
    state: AccountState | None
    budget: RateBudget | None
    chart: Chart

    @property
    def paused(self) -> bool:
        return self.state is not None and self.state.paused


@dataclass(frozen=True, kw_only=True, slots=True)
class Overview:
    accounts: tuple[AccountView, ...]
    outbox_estimate: int
    now: datetime
    pending_cap: int = PENDING_CAP
    dead_total: int = field(default=0)


async def read_overview(pool: Pool, configured: Mapping[str, ConfiguredAccount]) -> Overview:
    store = ConsoleStore(pool)
    names = sorted(set(await store.console_accounts()) | set(configured))
    counts = {c.account: c for c in await store.console_outbox_counts(names, PENDING_CAP)}
    dead: dict[str, dict[str, int]] = {}
    for row in await StatsStore(pool).status_dead_letter():
        dead.setdefault(row["account"], {})[row["reason"]] = row["count"]
    cancelled = {row["account"]: row["count"] for row in await StatsStore(pool).status_cancelled()}
    states = {s.account: s for s in await AccountStore(pool).account_state_list()}
    budgets = {b.account: b for b in await store.console_rate_budget()}
    minutes = await store.console_throughput(CHART_MINUTES)
    now = datetime.now(UTC)
    last_minute = now.replace(second=0, microsecond=0)
    views = []
    for name in names:
        count = counts.get(name)
        first = count.first_available_at if count else None
        views.append(
            AccountView(
                name=name,
                configured=configured.get(name),
                pending=count.pending if count else 0,
                pending_capped=bool(count and count.pending >= PENDING_CAP),
                running=count.running if count else 0,
                waiting_seconds=max(0.0, (now - first).total_seconds()) if first else None,
                dead=dead.get(name, {}),
                cancelled=cancelled.get(name, 0),
                state=states.get(name),
                budget=budgets.get(name),
                chart=minute_chart(
                    ((m.kind, m.minute, m.count) for m in minutes if m.account == name),
                    last_minute=last_minute,
                    minutes=CHART_MINUTES,
                ),
            )
        )
    return Overview(
        accounts=tuple(views),
        outbox_estimate=await store.console_outbox_estimate(),
        now=now,
        dead_total=sum(sum(d.values()) for d in dead.values()),
    )
