"""The HTTP seam's pure parts: rate-limit headers that say the quota is spent hold the account
before a 429; a header that cannot be sent is refused before anything is."""

from datetime import UTC, datetime

import pytest

from worker.errors import TransportError
from worker.providers import http
from worker.providers.http import quota_spent, reset_after

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("depth", "as_json"), [(1, True), (64, True), (65, False), (5000, False)])
def test_an_answer_nested_past_the_bound_is_kept_as_text(depth: int, as_json: bool) -> None:
    text = '{"id": 1, "x": ' + "[" * (depth - 1) + "0" + "]" * (depth - 1) + "}"
    parsed = http._parse(text, ["s3cret"])
    assert isinstance(parsed, dict) is as_json
    if not as_json:
        assert parsed == text
    wide = '{"lines": [' + ", ".join(['{"a": [1]}'] * 200) + "]}"
    assert isinstance(http._parse(wide, []), dict)  # many containers, three deep


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


def test_reset_after_reads_retry_after_first_then_the_reset() -> None:
    assert reset_after({}, NOW) is None
    assert reset_after({"Retry-After": "5", "X-RateLimit-Reset": "9"}, NOW) == 5.0
    assert reset_after({"X-RateLimit-Reset": "9"}, NOW) == 9.0
    assert reset_after({"X-RateLimit-Reset": str(int(NOW.timestamp()) - 5)}, NOW) == 0.0
    assert reset_after({"X-RateLimit-Reset": "nan"}, NOW) is None
    assert reset_after({"X-RateLimit-Reset": "-3"}, NOW) is None


def test_a_header_with_a_control_character_is_refused_before_sending() -> None:
    for bad in ("tok\n1", "tok\x001", "tok\x7f1", "tok\r"):
        with pytest.raises(TransportError) as caught:
            http.refuse_unsendable({"x-api-token": bad})
        assert not caught.value.sent
        assert bad not in str(caught.value)
    http.refuse_unsendable({"x-api-token": "tok\t1 ok~"})
