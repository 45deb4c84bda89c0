"""The provider conformance suite: every adapter against its own sandbox, the same tests for all.

River's driver conformance suite is the model: one set of behaviours the engine relies on,
checked for each implementation. Each test reads the provider's ``SandboxProfile`` for what
differs (credentials, which account failures exist, whether numbers or tags identify an
invoice, whether the adapter can reconcile), and asserts the provider-neutral outcome.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import factories
from tests.conformance.conftest import CALL_TIMEOUT, Send
from worker.invoice import parse_invoice
from worker.outcome import DeadLetter, PauseAccount, PauseReason, RateLimited, Reason, Retry, Synced
from worker.providers.base import Provider
from worker.testing.sandbox.profile import Failure, SandboxProfile
from worker.testing.sandbox.server import SandboxHandle

PAUSES = {
    Failure.AUTH_FAILED: PauseReason.AUTH_FAILED,
    Failure.FORBIDDEN: PauseReason.FORBIDDEN,
    Failure.CREDITS_EXPIRED: PauseReason.CREDITS_EXPIRED,
}


def created(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return sandbox.state.books.created()


def identities(sandbox: SandboxHandle, profile: SandboxProfile) -> list[str | None]:
    return [profile.identity(record) for record in created(sandbox)]


def expected_identity(profile: SandboxProfile, number: str, key: str) -> str:
    return number if profile.numbers_invoices else key


# --- the happy path --------------------------------------------------------------------------


def full_invoice(profile: SandboxProfile, number: str) -> dict[str, Any]:
    """Every canonical field the provider has a place for."""
    doc = factories.full_invoice(number)
    return {key: value for key, value in doc.items() if key not in profile.unsupported}


async def test_every_canonical_field_creates_one_invoice(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    outcome = await send(full_invoice(profile, "CONF-FULL-1"), key="k-full")
    assert isinstance(outcome, Synced), outcome
    assert outcome.provider_invoice_id
    assert outcome.link
    assert not outcome.recovered
    assert identities(sandbox, profile) == [expected_identity(profile, "CONF-FULL-1", "k-full")]
    if profile.numbers_invoices:
        assert outcome.invoice_number == "CONF-FULL-1"


async def test_fields_without_a_place_are_refused_before_sending(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    full = factories.full_invoice("CONF-UNSUP")
    for name in sorted(profile.unsupported):
        outcome = await send({**full_invoice(profile, "CONF-UNSUP"), name: full[name]})
        assert isinstance(outcome, DeadLetter), (name, outcome)
        assert outcome.reason is Reason.INVALID_PAYLOAD
        assert name in outcome.error
    assert created(sandbox) == []


async def test_minimal_invoice_without_a_number(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    outcome = await send(factories.invoice(None), key="k-bare")
    assert isinstance(outcome, Synced), outcome
    assert len(created(sandbox)) == 1


async def test_many_invoices_are_distinct(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    for index in range(5):
        outcome = await send(factories.invoice(f"CONF-{index}"), key=f"k-{index}")
        assert isinstance(outcome, Synced), outcome
    expected = [expected_identity(profile, f"CONF-{i}", f"k-{i}") for i in range(5)]
    assert identities(sandbox, profile) == expected


# --- refusals --------------------------------------------------------------------------------


async def test_data_the_provider_refuses_is_rejected(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    outcome = await send(profile.rejected(factories.invoice("CONF-BAD")))
    assert isinstance(outcome, DeadLetter), outcome
    assert outcome.reason is Reason.REJECTED
    assert outcome.error
    assert created(sandbox) == []


async def test_a_number_already_used_is_a_duplicate_on_a_first_attempt(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    first = await send(factories.invoice("CONF-DUP"), key="k-a")
    assert isinstance(first, Synced), first
    second = await send(factories.invoice("CONF-DUP"), key="k-b")
    if profile.numbers_invoices:
        # A producer collision: two keys, one number. A human must look.
        assert isinstance(second, DeadLetter), second
        assert second.reason is Reason.DUPLICATE
        assert len(created(sandbox)) == 1
    else:
        # The provider numbers invoices itself; our number is not a key there.
        assert isinstance(second, Synced), second
        assert len(created(sandbox)) == 2


async def test_account_failures_pause_the_account(
    failure: Failure, send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    sandbox.state.change(dict(profile.failures[failure]))
    outcome = await send(factories.invoice("CONF-PAUSE"))
    assert isinstance(outcome, PauseAccount), outcome
    assert outcome.reason is PAUSES[failure]
    assert created(sandbox) == []


# --- faults ----------------------------------------------------------------------------------


async def test_server_error_is_retried(send: Send, sandbox: SandboxHandle) -> None:
    sandbox.state.change({"faults": {"error_rate": 1.0}})
    outcome = await send(factories.invoice("CONF-500"))
    assert isinstance(outcome, Retry), outcome
    assert created(sandbox) == []


async def test_connection_reset_is_retried(send: Send, sandbox: SandboxHandle) -> None:
    sandbox.state.change({"faults": {"reset_rate": 1.0}})
    outcome = await send(factories.invoice("CONF-RST"))
    assert isinstance(outcome, Retry), outcome
    assert created(sandbox) == []


async def test_429_is_rate_limited_with_retry_after(send: Send, sandbox: SandboxHandle) -> None:
    sandbox.state.change({"faults": {"rate429_rate": 1.0, "retry_after": 7}})
    outcome = await send(factories.invoice("CONF-429"))
    assert isinstance(outcome, RateLimited), outcome
    assert outcome.after == pytest.approx(7, abs=1)
    assert created(sandbox) == []


async def warm_up(send: Send) -> None:
    """One invoice first: an adapter may read account data or find a customer before its
    first create (Billit), and a stall there is a plain failure, not an unknown outcome."""
    outcome = await send(factories.invoice("CONF-WARM"), key="k-warm")
    assert isinstance(outcome, Synced), outcome


async def test_commit_then_stall_is_an_unknown_outcome(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    await warm_up(send)
    sandbox.state.change({"faults": {"stall_rate": 1.0, "stall_seconds": CALL_TIMEOUT * 3}})
    outcome = await send(factories.invoice("CONF-STALL"), key="k-stall")
    assert isinstance(outcome, Retry), outcome
    assert outcome.outcome_unknown
    assert identities(sandbox, profile)[1:] == [expected_identity(profile, "CONF-STALL", "k-stall")]


# --- after an unknown outcome ----------------------------------------------------------------


async def test_retry_after_a_stall_never_creates_a_second_invoice(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    await warm_up(send)
    sandbox.state.change({"faults": {"stall_rate": 1.0, "stall_seconds": CALL_TIMEOUT * 3}})
    lost = await send(factories.invoice("CONF-REC"), key="k-rec")
    assert isinstance(lost, Retry), lost
    assert lost.outcome_unknown
    sandbox.state.change({"faults": {"stall_rate": 0.0}})

    outcome = await send(factories.invoice("CONF-REC"), key="k-rec", prior_unknown=True)

    assert identities(sandbox, profile)[1:] == [expected_identity(profile, "CONF-REC", "k-rec")]
    if profile.reconciles:
        assert isinstance(outcome, Synced), outcome
        assert outcome.recovered
        assert outcome.provider_invoice_id
    else:
        # No lookup: the duplicate answer cannot be confirmed as ours, so a person must look.
        assert isinstance(outcome, DeadLetter), outcome
        assert outcome.reason is Reason.DUPLICATE


async def test_unknown_outcome_that_created_nothing_is_sent_once(
    send: Send, sandbox: SandboxHandle, profile: SandboxProfile
) -> None:
    sandbox.state.change({"faults": {"reset_rate": 1.0}})
    lost = await send(factories.invoice("CONF-RS2"), key="k-rs2")
    assert isinstance(lost, Retry), lost
    sandbox.state.change({"faults": {"reset_rate": 0.0}})

    outcome = await send(factories.invoice("CONF-RS2"), key="k-rs2", prior_unknown=True)

    assert isinstance(outcome, Synced), outcome
    assert not outcome.recovered
    assert identities(sandbox, profile) == [expected_identity(profile, "CONF-RS2", "k-rs2")]


async def test_retry_is_safe_for_numbered_invoices(
    adapter: Provider, profile: SandboxProfile
) -> None:
    numbered = parse_invoice(factories.invoice("CONF-SAFE"))
    assert adapter.retry_is_safe(numbered)
    if profile.reconciles and not profile.numbers_invoices:
        assert adapter.retry_is_safe(parse_invoice(factories.invoice(None)))
