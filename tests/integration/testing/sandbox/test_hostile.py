"""The sandbox's hostile modes answer as a hostile provider would, and each adapter survives them:
a redirect is not followed, an inflating or dripping answer (after the invoice was created) is an
unknown outcome, an echoed credential is scrubbed, prefixes at the cuts included."""

from __future__ import annotations

import time

import pytest

from tests.e2e.fleet import swap_token
from tests.edges import Recorder, adapter_for, create_once, serve
from worker.outcome import PauseAccount, PauseReason, Retry
from worker.providers.base import HttpTimeouts
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.server import start_sandbox

CALL = HttpTimeouts(connect=1.0, total=1.0)
TOKEN = "Qk5e0b1d2c3a4f5e6d7c8b9a0f1e2d3c4"


@pytest.mark.parametrize("provider", sorted(PROFILES))
async def test_a_redirecting_sandbox_pauses_the_account_and_the_target_hears_nothing(
    provider: str,
) -> None:
    profile = PROFILES[provider]
    recorder = Recorder()
    async with serve(recorder.handle) as target:
        faults = FaultConfig(redirect_rate=1.0, redirect_to=target)
        box = await start_sandbox(provider, faults=faults, **profile.options)
        try:
            outcome = await create_once(profile, adapter_for(profile, box.url, token=profile.token))
        finally:
            await box.stop()
    assert recorder.seen == []
    assert isinstance(outcome, PauseAccount)
    assert outcome.reason is PauseReason.MISCONFIGURED


@pytest.mark.parametrize("fault", ["inflate_rate", "drip_rate"])
async def test_an_oversized_or_dripping_answer_after_a_create_is_an_unknown_outcome(
    fault: str,
) -> None:
    profile = PROFILES["billclap"]
    faults = FaultConfig(inflate_mib=8, drip_seconds=5).updated({fault: 1.0})
    box = await start_sandbox("billclap", faults=faults, **profile.options)
    try:
        started = time.monotonic()
        provider = adapter_for(profile, box.url, token=profile.token, timeouts=CALL)
        outcome = await create_once(profile, provider)
        elapsed = time.monotonic() - started
        created = len(box.state.books.created())
    finally:
        await box.stop()
    assert isinstance(outcome, Retry)
    assert outcome.outcome_unknown is True
    assert created == 1  # the sandbox did create it: only the answer was hostile
    assert elapsed < 3


@pytest.mark.parametrize("provider", sorted(PROFILES))
async def test_an_echoed_credential_leaves_no_prefix_at_the_cuts(provider: str) -> None:
    profile = PROFILES[provider]
    options = swap_token(profile.options, profile.token, TOKEN)
    box = await start_sandbox(provider, faults=FaultConfig(echo_rate=1.0), **options)
    try:
        outcome = await create_once(profile, adapter_for(profile, box.url, token=TOKEN))
    finally:
        await box.stop()
    text = repr(outcome)
    assert "echoed" in text  # the answer was kept, scrubbed
    assert TOKEN[:2] not in text
