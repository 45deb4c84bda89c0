"""The redaction processor: every configured secret replaced wherever it appears, whether the
string is searched secret by secret (few secrets) or by its windows (many)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.logs import REDACTED, Redactor

# A fleet's worth of tokens: more secrets than any string below has characters.
FLEET = [f"token-{n:05d}-of-the-fleet" for n in range(500)]


def redact(redactor: Redactor, **event: Any) -> dict[str, Any]:
    return dict(redactor(None, "info", event))


@pytest.mark.parametrize("secrets", [["token-00042-of-the-fleet"], FLEET], ids=["one", "fleet"])
def test_a_secret_is_replaced_in_strings_and_nested_values(secrets: list[str]) -> None:
    redactor = Redactor(secrets)
    event = redact(
        redactor,
        event="provider.error",
        error="HTTP 401 for token-00042-of-the-fleet, and token-00042-of-the-fleet again",
        response={"headers": ["x", "Bearer token-00042-of-the-fleet"]},
    )
    assert event["error"] == f"HTTP 401 for {REDACTED}, and {REDACTED} again"
    assert event["response"] == {"headers": ["x", f"Bearer {REDACTED}"]}


def test_among_many_secrets_the_longest_that_matches_is_replaced_whole() -> None:
    redactor = Redactor([*FLEET, "token-00007-of-the-fleet-and-more"])
    event = redact(redactor, error="at the end: token-00007-of-the-fleet-and-more")
    assert event["error"] == f"at the end: {REDACTED}"


def test_a_secret_as_short_as_allowed_is_found_among_many() -> None:
    redactor = Redactor([*FLEET, "k3y!"])
    assert redact(redactor, error="the key was k3y!")["error"] == f"the key was {REDACTED}"


def test_an_event_with_no_secret_in_it_is_passed_on_untouched() -> None:
    # Not copied: this runs for every line the worker logs, one per invoice.
    redactor = Redactor(FLEET)
    event = {"event": "invoice.synced", "account": "shop", "outbox_id": 7, "error": "x" * 40}
    assert redactor(None, "info", event) is event
