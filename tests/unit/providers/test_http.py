"""Rate-limit headers that say the quota is spent hold the account before a 429."""

from datetime import UTC, datetime

from worker.providers.http import quota_spent

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_remaining_quota_needs_no_wait() -> None:
    assert quota_spent({}, NOW, window=60) is None
    assert quota_spent({"X-RateLimit-Remaining": "3"}, NOW, window=60) is None


def test_a_spent_quota_waits_for_what_the_provider_says_else_the_window() -> None:
    spent = {"X-RateLimit-Remaining": "0"}
    assert quota_spent(spent, NOW, window=60) == 60
    assert quota_spent({**spent, "Retry-After": "12"}, NOW, window=60) == 12
    assert quota_spent({**spent, "X-RateLimit-Reset": "7"}, NOW, window=60) == 7
    epoch = str(int(NOW.timestamp()) + 30)
    assert quota_spent({**spent, "X-RateLimit-Reset": epoch}, NOW, window=60) == 30
    assert quota_spent({**spent, "X-RateLimit-Reset": "soon"}, NOW, window=60) == 60
