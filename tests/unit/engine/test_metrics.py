"""The invoice counter's outcome label comes from each attempt's Fate."""

from datetime import UTC, datetime
from typing import Literal

from worker.claims import Claimed, Resolution
from worker.engine.flusher import Finished
from worker.engine.metrics import Metrics
from worker.outcome import Fate
from worker.policy import Decision
from worker.store.outbox import RecordSummary

KINDS: dict[Fate, Literal["synced", "retry", "dead"]] = {
    Fate.SYNCED: "synced",
    Fate.RETRY_SCHEDULED: "retry",
    Fate.RATE_LIMITED: "retry",
    Fate.DEAD_LETTERED: "dead",
    Fate.RELEASED: "retry",
    Fate.PROBE_FAILED: "retry",
}


def finished(row_id: int, fate: Fate) -> Finished:
    now = datetime.now(UTC)
    row = Claimed(
        id=row_id,
        account="shop",
        idempotency_key=f"k{row_id}",
        payload="{}",
        attempt=1,
        claim=1,
        first_attempt_at=now,
        created_at=now,
        prior_unknown=False,
        probe=False,
    )
    reason = "rejected" if fate is Fate.DEAD_LETTERED else None
    resolution = Resolution(id=row_id, claim=1, kind=KINDS[fate], reason=reason)
    return Finished(
        row=row,
        decision=Decision(resolution=resolution, fate=fate),
        provider="p",
        duration=0.1,
        started_at=now,
    )


def count(metrics: Metrics, outcome: str, reason: str = "") -> float | None:
    labels = {"account": "shop", "outcome": outcome, "reason": reason}
    return metrics.registry.get_sample_value("invoice_sync_invoices_total", labels)


def test_each_written_attempt_is_counted_under_its_fate_s_label() -> None:
    metrics = Metrics()
    batch = [finished(i, fate) for i, fate in enumerate(Fate)]
    summary = RecordSummary(applied=frozenset(range(len(batch))), synced=1, dead=1, rescheduled=4)
    metrics.observe_batch(batch, summary)
    assert count(metrics, "synced") == 1
    assert count(metrics, "retried") == 1
    assert count(metrics, "rate_limited") == 1
    assert count(metrics, "dead_lettered", "rejected") == 1
    assert count(metrics, "released") == 2  # given back, and a failed probe
    waits = {"account": "shop", "source": "provider"}
    assert metrics.registry.get_sample_value("invoice_sync_rate_limit_waits_total", waits) == 1


def test_rows_of_one_series_in_a_batch_each_count() -> None:
    metrics = Metrics()
    fates = [Fate.SYNCED, Fate.RATE_LIMITED, Fate.SYNCED, Fate.RATE_LIMITED, Fate.SYNCED]
    batch = [finished(i, fate) for i, fate in enumerate(fates)]
    summary = RecordSummary(applied=frozenset(range(4)), synced=2, dead=0, rescheduled=2)
    metrics.observe_batch(batch, summary)  # the last row was fenced off
    assert count(metrics, "synced") == 2
    assert count(metrics, "rate_limited") == 2
    waits = {"account": "shop", "source": "provider"}
    assert metrics.registry.get_sample_value("invoice_sync_rate_limit_waits_total", waits) == 2


def test_an_attempt_another_claim_fenced_off_is_not_counted() -> None:
    metrics = Metrics()
    summary = RecordSummary(applied=frozenset(), synced=0, dead=0, rescheduled=0)
    metrics.observe_batch([finished(1, Fate.SYNCED)], summary)
    assert count(metrics, "synced") is None


def test_accounts_past_the_series_cap_share_one_label() -> None:
    metrics = Metrics(account_series=2)
    for account in ("a", "b", "c", "d", "a"):
        metrics.observe_call(account, "synced", 0.01)
    metrics.observe_token_waits(["e", "b"])
    count = "invoice_sync_provider_request_duration_seconds_count"
    assert metrics.registry.get_sample_value(count, {"account": "a", "outcome": "synced"}) == 2
    assert metrics.registry.get_sample_value(count, {"account": "b", "outcome": "synced"}) == 1
    assert metrics.registry.get_sample_value(count, {"account": "_other", "outcome": "synced"}) == 2
    assert metrics.registry.get_sample_value(count, {"account": "c", "outcome": "synced"}) is None
    waits = "invoice_sync_rate_limit_waits_total"
    assert metrics.registry.get_sample_value(waits, {"account": "_other", "source": "bucket"}) == 1
    assert metrics.registry.get_sample_value(waits, {"account": "b", "source": "bucket"}) == 1
