"""Fixtures for the provider conformance suite: one sandbox and one adapter per profile.

Everything here is read from ``worker.testing.sandbox.PROFILES`` and ``worker.providers.registry.PROVIDERS``;
no provider is named, so a new provider joins the suite by registering its sandbox profile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from worker.invoice import parse_invoice
from worker.outcome import Outcome
from worker.providers.base import Attempt, Credentials, HttpTimeouts, Provider
from worker.providers.registry import PROVIDERS
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.profile import SandboxProfile
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

# Short enough that a commit-then-stall answer times out quickly, long enough for a loaded CI box.
CALL_TIMEOUT = 1.5


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test runs once per provider; a test taking ``failure`` once per failure that
    provider's sandbox can simulate."""
    if "profile" not in metafunc.fixturenames:
        return
    if "failure" in metafunc.fixturenames:
        pairs = [(name, failure) for name, p in sorted(PROFILES.items()) for failure in p.failures]
        ids = [f"{name}-{failure}" for name, failure in pairs]
        metafunc.parametrize(("profile", "failure"), pairs, ids=ids, indirect=["profile"])
    else:
        metafunc.parametrize("profile", sorted(PROFILES), indirect=True)


@pytest.fixture
def profile(request: pytest.FixtureRequest) -> SandboxProfile:
    return PROFILES[request.param]


@pytest.fixture
async def sandbox(profile: SandboxProfile) -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox(profile.provider, **profile.options)
    yield handle
    await handle.stop()


@pytest.fixture
async def adapter(profile: SandboxProfile, sandbox: SandboxHandle) -> AsyncIterator[Provider]:
    spec = PROVIDERS[profile.provider]
    provider = spec.factory(
        Credentials(base_url=sandbox.url, token=profile.token),
        spec.options.model_validate(dict(profile.account)),
        HttpTimeouts(connect=1.0, total=CALL_TIMEOUT),
    )
    yield provider
    await provider.aclose()


Send = Callable[..., Any]


@pytest.fixture
def send(adapter: Provider, profile: SandboxProfile) -> Send:
    """``await send(payload, key=..., prior_unknown=...)``: one attempt through the adapter."""
    calls = 0

    async def _send(
        payload: dict[str, Any], *, key: str = "conf-1", prior_unknown: bool = False
    ) -> Outcome:
        nonlocal calls
        calls += 1
        options = {**profile.sample_options(calls), **payload.get("provider_options", {})}
        doc = {**payload, "provider_options": options}
        attempt = Attempt(
            outbox_id=calls,
            account="conformance",
            idempotency_key=key,
            invoice=parse_invoice(doc),
            number=calls,
            prior_unknown=prior_unknown,
        )
        outcome = await adapter.create_invoice(attempt)
        assert profile.token not in repr(outcome), "the credential leaked into an outcome"
        return outcome

    return _send
