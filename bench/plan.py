"""What a run does: the sizes of each scenario and the settings every scenario shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Sizes:
    queue_invoices: int
    http_invoices: int
    http_latency_invoices: int
    http_latency: float
    pickup_inserts: int
    pickup_gap: float
    """Seconds of idle between one pickup and the next insert (so each insert finds it idle)."""
    rate_limit: int
    rate_seconds: float
    rate_replicas: int
    backlog_small: int
    backlog_large: int
    backlog_window: int
    """Throughput is taken over the first this-many invoices drained, in both backlogs..."""
    backlog_seconds: float
    """... or over what was drained in this many seconds, if that is fewer."""
    enqueue_lines: int
    enqueue_per_row: int
    enqueue_connections: int
    many_accounts: int
    """Accounts with one invoice each, drained against one account with as many invoices."""
    many_idle_accounts: int
    """Accounts configured, none with work: RSS and claim time against 10."""
    many_idle_seconds: float


SIZES = {
    # CI's smoke run: every code path, seconds of work, no meaningful figures.
    "small": Sizes(
        queue_invoices=300,
        http_invoices=200,
        http_latency_invoices=100,
        http_latency=0.05,
        pickup_inserts=10,
        pickup_gap=0.02,
        rate_limit=20,
        rate_seconds=2.0,
        rate_replicas=3,
        backlog_small=300,
        backlog_large=1000,
        backlog_window=300,
        backlog_seconds=60.0,
        enqueue_lines=1000,
        enqueue_per_row=300,
        enqueue_connections=2,
        many_accounts=300,
        many_idle_accounts=2_000,
        many_idle_seconds=2.0,
    ),
    # The sizes the targets are set for (the per-row enqueue loop is the comparison, so a fiftieth suffices).
    "full": Sizes(
        queue_invoices=50_000,
        http_invoices=20_000,
        http_latency_invoices=5_000,
        http_latency=0.05,
        pickup_inserts=1_000,
        pickup_gap=0.03,
        rate_limit=50,
        rate_seconds=30.0,
        rate_replicas=3,
        backlog_small=10_000,
        backlog_large=1_000_000,
        backlog_window=10_000,
        backlog_seconds=300.0,
        enqueue_lines=1_000_000,
        enqueue_per_row=20_000,
        enqueue_connections=4,
        many_accounts=10_000,
        many_idle_accounts=100_000,
        many_idle_seconds=10.0,
    ),
}


def sized(name: str, overrides: list[str]) -> Sizes:
    """``SIZES[name]`` with ``key=value`` overrides (``--set queue_invoices=1000``)."""
    base = SIZES[name]
    types = {f.name: f.type for f in dataclasses.fields(base)}
    changes: dict[str, object] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in types:
            raise ValueError(
                f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(types)}"
            )
        changes[key] = float(raw) if types[key] in (float, "float") else int(raw)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Context:
    server_dsn: str
    size: str
    sizes: Sizes
    concurrency: int
    engine_only: bool
    """Skip the comparison sides (procrastinate, PgQueuer, the HTTP ceiling): for profiling."""
    pg_stat_statements: bool
    workdir: Path
