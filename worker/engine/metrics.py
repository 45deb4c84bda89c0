"""Prometheus metrics (prefix ``invoice_sync_``), on a registry of the worker's own.

The engine and the flusher call the ``observe_*`` methods as things happen; the gauges that need
a query (unfinished rows, oldest age, dead letters, paused accounts, rows no replica works) are
refreshed by ``MetricsRefresher`` on an interval, so a scrape never touches the database. Each
refresh also announces the replica's accounts that have rows in the database
(``invoice_sync.replica_account``). Per-account series exist only for accounts with activity, and
for at most ``[observe] metrics_accounts`` of them (``Metrics.account_label``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from worker.engine.flusher import Finished
from worker.errors import StoreError
from worker.outcome import Fate
from worker.store.accounts import AccountStore
from worker.store.database import Pool
from worker.store.outbox import RecordSummary, WorkedAccounts
from worker.store.stats import StatsStore

# Provider calls: a loopback sandbox answers in a millisecond, a real provider in up to the
# request timeout.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
# How long a replica's announcement of its accounts holds. Refreshes come every 10 s (the
# engine's METRICS_EVERY); this outlasts many missed ones (a slow database, a rolling restart)
# before an account counts as nobody's.
ANNOUNCE_TTL = 300.0
# Series of the unconfigured gauge, for the largest backlogs only: the account names come from
# producers' rows, and a series per name would be unbounded. `status` lists them all.
UNCONFIGURED_SERIES = 50
# `[observe] metrics_accounts`: accounts with series of their own; the rest share OTHER.
DEFAULT_ACCOUNT_SERIES = 100
OTHER = "_other"


class Metrics:
    def __init__(self, *, account_series: int = DEFAULT_ACCOUNT_SERIES) -> None:
        self._account_series = account_series
        self._labelled: set[str] = set()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invoices = Counter(
            "invoice_sync_invoices",
            "Attempts written, by account, outcome and dead-letter reason.",
            ["account", "outcome", "reason"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "invoice_sync_provider_request_duration_seconds",
            "Provider calls by account and outcome (synced, retry, rate_limited, dead_letter, pause).",
            ["account", "outcome"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.unfinished = Gauge(
            "invoice_sync_pending_invoices",
            "Outbox rows not finished (pending or running).",
            ["account"],
            registry=r,
        )
        self.oldest_age = Gauge(
            "invoice_sync_oldest_pending_age_seconds",
            "Age of the oldest unfinished outbox row.",
            ["account"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "invoice_sync_dead_letter_invoices",
            "Dead letters not replayed, by account and reason.",
            ["account", "reason"],
            registry=r,
        )
        self.unconfigured = Gauge(
            "invoice_sync_unconfigured_pending_invoices",
            "Outbox rows of accounts no running replica is configured for: nobody claims them.",
            ["account"],
            registry=r,
        )
        self.paused = Gauge(
            "invoice_sync_account_paused",
            "1 while the account is paused, by pause reason.",
            ["account", "reason"],
            registry=r,
        )
        self.rate_waits = Counter(
            "invoice_sync_rate_limit_waits",
            "Times an account waited for its rate limit: the provider's 429 or the shared bucket.",
            ["account", "source"],
            registry=r,
        )
        self.leases_reclaimed = Counter(
            "invoice_sync_leases_reclaimed",
            "Rows whose lease expired and went back to pending.",
            registry=r,
        )
        self.claim_seconds = Histogram(
            "invoice_sync_claim_duration_seconds",
            "One claim: the walk for accounts with due rows, and the claim statement.",
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.flush_seconds = Histogram(
            "invoice_sync_flush_duration_seconds",
            "One outcome flush (a batch of rows).",
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.accounts_invalid = Gauge(
            "invoice_sync_accounts_invalid",
            "Accounts in the database left out at start-up or the last reload: invalid "
            "settings, a secret no key decrypts, a name the config file uses (see the "
            "account.invalid log line naming each).",
            registry=r,
        )
        self.database_up = Gauge(
            "invoice_sync_database_up", "1 when the last database call succeeded.", registry=r
        )

        self._calls: dict[tuple[str, str], Any] = {}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def account_label(self, account: str) -> str:
        """``account`` while it is among the first ``account_series`` accounts seen active,
        else ``_other``: series cost Prometheus memory for as long as they exist, and an
        account that invoiced once would keep its own forever. ``status`` counts them all."""
        if account in self._labelled:
            return account
        if len(self._labelled) < self._account_series:
            self._labelled.add(account)
            return account
        return OTHER

    def observe_call(self, account: str, outcome: str, seconds: float) -> None:
        account = self.account_label(account)
        # labels() takes a lock and builds a key on every call: keep the children.
        child = self._calls.get((account, outcome))
        if child is None:
            child = self._calls[account, outcome] = self.call_seconds.labels(account, outcome)
        child.observe(seconds)

    def observe_batch(self, batch: Sequence[Finished], summary: RecordSummary) -> None:
        """Count written attempts (rows another worker's claim fenced off are not ours): each
        series once per batch by the rows it gained, as ``labels()`` takes a lock and builds a
        key on every call (a batch is mostly one account's synced rows)."""
        counts: collections.Counter[tuple[str, Fate, str]] = collections.Counter(
            (item.row.account, item.decision.fate, item.decision.resolution.reason or "")
            for item in batch
            if item.row.id in summary.applied
        )
        for (name, fate, reason), rows in counts.items():
            account = self.account_label(name)
            if fate is Fate.RATE_LIMITED:
                self.rate_waits.labels(account, "provider").inc(rows)
            self.invoices.labels(account, fate.label, reason).inc(rows)

    def observe_token_waits(self, accounts: Iterable[str]) -> None:
        for account in accounts:
            self.rate_waits.labels(self.account_label(account), "bucket").inc()


class MetricsRefresher:
    """The gauges that need a query, refreshed by a periodic chore."""

    def __init__(
        self,
        pool: Pool,
        metrics: Metrics,
        worked: Callable[[], WorkedAccounts],
    ) -> None:
        """A replica's: ``worked`` says which accounts it works at each refresh (the fleet's
        ``worked``: unusable ones come and go)."""
        self._pool = pool
        self._stats = StatsStore(pool)
        self._metrics = metrics
        self._worked = worked

    async def refresh(self) -> None:
        """Announce this replica's accounts that have rows, then read the gauges' values."""
        try:
            outbox = await self._stats.metrics_outbox(self._worked())
            await self._announce(outbox)
            dead = await self._stats.status_dead_letter()
            worked = await self._stats.replica_account_live()
            states = await AccountStore(self._pool).account_state_list()
        except StoreError:
            self._metrics.database_up.set(0)
            raise
        self._metrics.database_up.set(1)
        self._set_unfinished(outbox, worked=worked)
        dead_by: dict[tuple[str, ...], float] = {}
        for r in dead:
            key = (self._metrics.account_label(r["account"]), r["reason"])
            dead_by[key] = dead_by.get(key, 0) + r["count"]
        _replace(self._metrics.dead_letters, dead_by)
        paused: dict[tuple[str, ...], float] = {
            (s.account, s.pause_reason or ""): 1 for s in states if s.paused
        }
        _replace(self._metrics.paused, paused)

    def _set_unfinished(self, outbox: Sequence[Mapping[str, Any]], worked: set[str]) -> None:
        """This replica's accounts' backlog (those with rows; past the series cap, summed as
        ``_other`` with the oldest age of them), and the rows of accounts no replica works."""
        unfinished: dict[tuple[str, ...], float] = {}
        oldest: dict[tuple[str, ...], float] = {}
        for row in outbox:
            if not row["mine"]:
                continue
            key = (self._metrics.account_label(row["account"]),)
            unfinished[key] = unfinished.get(key, 0) + row["unfinished"]
            oldest[key] = max(oldest.get(key, 0.0), float(row["oldest_age"]))
        _replace(self._metrics.unfinished, unfinished)
        _replace(self._metrics.oldest_age, oldest)
        nobodys = sorted(
            (row for row in outbox if row["account"] not in worked),
            key=lambda row: (-row["unfinished"], row["account"]),
        )
        _replace(
            self._metrics.unconfigured,
            {(r["account"],): r["unfinished"] for r in nobodys[:UNCONFIGURED_SERIES]},
        )

    async def _announce(self, outbox: Sequence[Mapping[str, Any]]) -> None:
        """Tell the database (the KEDA query, other replicas' gauges, `status`) which of the
        accounts with rows a running replica works. Only those with rows: announcing every
        configured account would write a row per account every refresh, however idle."""
        mine = sorted(row["account"] for row in outbox if row["mine"])
        if mine:
            await self._stats.replica_account_announce(mine, ANNOUNCE_TTL)


def _replace(gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    """Set a labelled gauge to exactly these series (a resumed account's series goes away)."""
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
