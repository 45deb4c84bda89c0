"""Each fate's log event and metric label: both are contracts that docs/operations.md lists."""

import pytest

from worker.outcome import Fate


@pytest.mark.parametrize(
    ("fate", "event", "label"),
    [
        (Fate.SYNCED, "invoice.synced", "synced"),
        (Fate.RETRY_SCHEDULED, "invoice.retry_scheduled", "retried"),
        (Fate.RATE_LIMITED, "invoice.rate_limited", "rate_limited"),
        (Fate.DEAD_LETTERED, "invoice.dead_lettered", "dead_lettered"),
        (Fate.RELEASED, "invoice.released", "released"),
        (Fate.PROBE_FAILED, "invoice.probe_failed", "released"),
    ],
)
def test_each_fate_names_its_event_and_label(fate: Fate, event: str, label: str) -> None:
    assert (fate.event, fate.label) == (event, label)


def test_every_fate_is_listed_and_events_are_unique() -> None:
    assert len(Fate) == 6
    assert len({fate.event for fate in Fate}) == len(Fate)
