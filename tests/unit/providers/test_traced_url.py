"""What an HTTP span shows of a provider URL: never a query, credentials or a secret."""

import pytest

from worker.providers.http import traced_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example/v1/invoice?token=abc#x", "https://api.example/v1/invoice"),
        ("https://user:pw@api.example:8443/v1", "https://api.example:8443/v1"),
        ("http://[::1]:9000/a", "http://[::1]:9000/a"),
        (
            "https://api.example/business/s3cret-token-value/invoices",
            "https://api.example/business/[redacted]/invoices",
        ),
        ("http://api.example:99999/", "an unreadable URL"),
    ],
)
def test_a_span_shows_the_url_without_query_credentials_or_secrets(url: str, shown: str) -> None:
    assert traced_url(url, ["s3cret-token-value"]) == shown
