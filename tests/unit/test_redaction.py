"""Secrets are cut out of every text an outcome carries, whoever echoed them."""

from worker.outcome import DeadLetter, PauseAccount, PauseReason, Reason, Retry
from worker.providers.redaction import REDACTED, scrubbed


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
