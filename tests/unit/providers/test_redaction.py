"""Secrets are cut out of every text an outcome carries, whoever echoed them."""

import json
import random
import time

import pytest

from worker.outcome import DeadLetter, PauseAccount, PauseReason, Reason, Retry
from worker.providers import http
from worker.providers.base import RESPONSE_LIMIT, bounded
from worker.providers.http import RedirectError
from worker.providers.redaction import (
    HEAD,
    REDACTED,
    _without_trailing_prefix,
    holds_none,
    scrub_text,
    scrub_value,
    scrubbed,
    secrets_to_cut,
)
from worker.texts import CUT, cut


def test_every_secret_is_cut_from_errors_responses_and_the_nested_invoice() -> None:
    outcome = PauseAccount(
        reason=PauseReason.AUTH_FAILED,
        invoice=DeadLetter(
            reason=Reason.AUTH_FAILED,
            error="token tok-123 refused; jwt tok-123.sig expired",
            response={"echo": ["tok-123.sig", {"deep": "app-secret"}]},
        ),
    )
    clean = scrubbed(outcome, ["tok-123", "tok-123.sig", "app-secret", ""])
    assert isinstance(clean, PauseAccount)
    text = repr(clean)
    assert "tok-123" not in text
    assert "app-secret" not in text
    # The longer secret is cut whole, not left as "[redacted].sig".
    assert clean.invoice.error == f"token {REDACTED} refused; jwt {REDACTED} expired"
    assert clean.invoice.response == {"echo": [REDACTED, {"deep": REDACTED}]}


def test_an_outcome_without_secrets_is_returned_as_is() -> None:
    outcome = Retry(error="HTTP 502", response={"status": False})
    assert scrubbed(outcome, "tok-123") is outcome
    assert scrubbed(outcome, []) is outcome


def test_a_secret_the_cut_fell_inside_is_removed_whatever_the_length_kept() -> None:
    secret = "Qz-0123456789abcdef"
    for kept in range(1, len(secret)):
        text = cut("x" * 50 + secret + "y" * 50, 50 + kept)
        assert text.endswith(CUT)
        clean = scrub_text(text, secrets_to_cut([secret]))
        assert clean == "x" * 50 + REDACTED + CUT, (kept, clean)


def test_the_cut_stored_response_loses_the_prefix_in_the_final_scrub() -> None:
    secret = "Qz-0123456789abcdef"
    body = "a" * (RESPONSE_LIMIT - 5) + secret
    outcome = Retry(error="HTTP 500", response=bounded(body))
    clean = scrubbed(outcome, secret)
    assert isinstance(clean, Retry)
    assert clean.response["head"].endswith(REDACTED + CUT)
    assert "Qz" not in clean.response["head"]


def test_text_without_a_cut_keeps_what_merely_looks_like_a_prefix() -> None:
    assert scrub_text("Qz- is fine", ["Qz-0123"]) == "Qz- is fine"


def test_parsed_answers_are_scrubbed_in_keys_and_values() -> None:
    value = {"tok-1": ["a tok-1 b", {"k": "tok-1"}], "n": 3}
    assert scrub_value(value, ["tok-1"]) == {
        REDACTED: [f"a {REDACTED} b", {"k": REDACTED}],
        "n": 3,
    }


def test_a_secret_echoed_in_another_case_is_scrubbed() -> None:
    secret = "Tok_MixedCASE_Secret_9f8E7d6C5b4A"
    text = f"a {secret.lower()} b {secret.upper()} c"
    assert secret.lower() not in scrub_text(text, [secret]).lower()


def test_a_prefix_in_another_case_is_scrubbed_at_a_cut() -> None:
    secret = "Tok_MixedCASE_Secret_9f8E7d6C5b4A"
    cleaned = scrub_text("answer: tok_mixed" + CUT, [secret])
    assert "tok_" not in cleaned.lower()


def test_a_redirect_to_a_host_named_after_the_token_leaks_no_token() -> None:
    # The shown Location is lowercased (a URL's host is): the scrub must still find it.
    secret = "Tok_MixedCASE_Secret_9f8E7d6C5b4A"
    paused = RedirectError(302, f"https://{secret}.evil.example/x").paused("BillClap")
    shown = repr(scrubbed(paused, secret))
    assert secret.lower() not in shown.lower()


def test_a_secret_json_would_escape_is_still_found_in_a_parsed_answer() -> None:
    # Answers are checked for secrets through their JSON text first; a secret holding a
    # character JSON writes escaped (quote, backslash, control) is not in that text as itself.
    for secret in ('tok"1', "tok\\1", "tok\n1"):
        value = {"echo": [f"a {secret} b"], secret: 1}
        assert scrub_value(value, [secret]) == {"echo": [f"a {REDACTED} b"], REDACTED: 1}


def test_a_secret_echoed_with_a_letter_that_folds_onto_ascii_is_scrubbed() -> None:
    # The Kelvin sign folds onto "k" without case: not ASCII, so no ASCII shortcut applies.
    value = {"echo": "a TO\u212a-1 b"}
    assert scrub_value(value, ["tok-1"]) == {"echo": f"a {REDACTED} b"}
    assert not holds_none("TO\u212a-1", ["tok-1"])


def test_a_cut_anywhere_in_an_answer_leads_to_the_prefix_scrub() -> None:
    value = {"head": "answer: tok_mi" + CUT, "n": [1.5, None, True]}
    assert scrub_value(value, ["tok_mixed"]) == {
        "head": f"answer: {REDACTED}{CUT}",
        "n": [1.5, None, True],
    }


def test_holds_none_matches_the_scrub_without_case() -> None:
    assert holds_none('{"a": "clean"}', ["tok-1"])
    assert not holds_none('{"a": "TOK-1"}', ["tok-1"])
    assert not holds_none("x" + CUT, ["tok-1"])
    assert not holds_none("\u00e9 tok-1", ["TOK-1"])


def test_an_answer_echoing_a_secret_through_a_json_escape_is_scrubbed() -> None:
    # The raw text shows "\u0074ok-1", not the token: the parsed value must still lose it.
    assert http._parse('{"echo": "\\u0074ok-1 here"}', ["tok-1"]) == {"echo": "[redacted] here"}
    assert http._parse('{"echo": "tok-1"}', ["tok-1"]) == {"echo": "[redacted]"}
    clean = {"result": {"invoice_id": 7, "link": "https://x.example/p/7"}}
    assert http._parse(json.dumps(clean), ["tok-1"]) == clean


def _slow_prefix_cut(piece: str, secret: str) -> str:
    """The prefix removal as first written: a comparison per length, longest first."""
    for length in range(min(len(piece), len(secret) - 1), 0, -1):
        if piece[-length:].lower() == secret[:length].lower():
            return piece[:-length] + REDACTED
    return piece


def test_the_prefix_at_a_cut_is_found_as_before_in_linear_time() -> None:
    chooser = random.Random(17)
    for _ in range(3000):
        secret = "".join(chooser.choice("aAbB") for _ in range(chooser.randint(1, 8)))
        piece = "".join(chooser.choice("aAbBx") for _ in range(chooser.randint(0, 12)))
        assert _without_trailing_prefix(piece, secret) == _slow_prefix_cut(piece, secret)
    # An 8,192-character token (the longest a Refrens login may issue) and a 1 MB answer
    # (max_response_size) that nearly repeats it all along, cut: minutes of the event loop
    # before (a near miss at every position, and a comparison per length at the cut).
    secret = "x" * 8192
    answer = ("x" * 8191 + "y") * 120 + "x" * 5000 + CUT
    started = time.monotonic()
    # Each near miss is a run of the secret's start: cut too.
    assert scrub_text(answer, [secret]) == (REDACTED + "y") * 120 + REDACTED + CUT
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "echo",
    [
        "token Sk%2BLive%2F9f8e7d6c5b4a3210zzQ%3D is not valid",  # as a query carries it
        "token Sk+Live/9f8e7d6c5b... is not valid",  # shortened by the server
        "token SK+LIVE/9F8E7D6C5B4A3210ZZQ= is not valid",
        "token sk+live/9f8e7d6c is not valid",
    ],
)
def test_echoes_of_a_secret_shortened_or_encoded_by_the_server_are_cut(echo: str) -> None:
    secret = "Sk+Live/9f8e7d6c5b4a3210zzQ="
    secrets = secrets_to_cut(secret)
    assert not holds_none(echo, secrets)
    cleaned = scrub_text(echo, secrets)
    assert cleaned.startswith("token [redacted]")
    for length in range(HEAD, len(secret) + 1):
        assert secret[:length].lower() not in cleaned.lower()
    # A run shorter than HEAD is not taken for the secret.
    assert scrub_text("Sk+Live is a plan", secrets) == "Sk+Live is a plan"


def test_a_secret_whose_start_repeats_is_cut_whole_not_from_an_earlier_run() -> None:
    secret = "abcdefghabcdefghTAILSECRETVALUE123"
    assert scrub_text("abcdefgh" + secret, secrets_to_cut(secret)) == "abcdefgh" + REDACTED


def test_what_another_jwt_shares_with_the_secret_is_left_alone() -> None:
    # Every JWT starts with the same header: a signed link holding another must stay intact.
    token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtZSIsImlhdCI6MX0.c2lnbmF0dXJlLXRlc3Q"
    link = "https://x/pdf?t=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJvdGhlciI6MX0.zzz"
    assert scrub_text(link, secrets_to_cut(token)) == link
    assert scrub_text(link + " " + token[:60] + "...", secrets_to_cut(token)) == (
        link + " " + REDACTED + "..."
    )
