"""A 3xx names where it points as scheme and host only, and pauses the account (misconfigured)
with the row waiting, its outcome known."""

import pytest

from worker.outcome import PauseAccount, PauseReason, Retry
from worker.providers.http import RedirectError


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("https://new.example.com/v2/x?token=abc#frag", "https://new.example.com"),
        ("HTTP://User:Pass@Evil.Example:8443/p?q=1", "http://evil.example:8443"),
        ("http://[::1]:9/p", "http://[::1]:9"),
        ("/elsewhere?q=1", "another path on the same host"),
        (None, "nowhere (no Location)"),
        ("  ", "nowhere (no Location)"),
        ("http://[::1", "an unreadable Location"),
        ("http://host:99999/", "an unreadable Location"),
        ("http://ho\nst/", "an unreadable Location"),
    ],
)
def test_where_a_redirect_points_is_shown_as_scheme_and_host(
    location: str | None, shown: str
) -> None:
    assert RedirectError(307, location).target == shown


def test_a_redirect_pauses_the_account_with_the_row_waiting() -> None:
    outcome = RedirectError(308, "https://moved.example/api?secret=1").paused("BillClap")
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED
    assert isinstance(outcome.invoice, Retry)
    assert outcome.invoice.outcome_unknown is False
    assert outcome.invoice.http_status == 308
    assert outcome.invoice.error.startswith(
        "BillClap answered HTTP 308 pointing to https://moved.example: base_url has moved"
    )
    assert "secret" not in outcome.invoice.error
