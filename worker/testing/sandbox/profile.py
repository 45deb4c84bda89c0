"""What a sandbox tells provider-neutral code about itself: its ``PROFILE``.

The conformance suite (``tests/conformance``), the e2e runs and ``invoice-sync demo`` never
name a provider: they read each sandbox module's ``PROFILE`` to learn how to start the sandbox
so a known credential works, which account config points an adapter at it, which runtime state
change makes its next create fail at the account level, which canonical invoice it refuses, and
which created record belongs to which outbox row. So a fourth provider needs an adapter, a
sandbox with its profile, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Failure(StrEnum):
    """Account-level failures a sandbox can be switched into; each pauses the account."""

    AUTH_FAILED = "auth_failed"
    """The credential stops working (revoked, expired): ``PauseAccount(AUTH_FAILED)``."""
    FORBIDDEN = "forbidden"
    """The plan or account forbids the call (no API plan, blocked): ``PauseAccount(FORBIDDEN)``."""
    CREDITS_EXPIRED = "credits_expired"
    """The plan's invoice credits are spent: ``PauseAccount(CREDITS_EXPIRED)``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SandboxProfile:
    """How to drive one provider's sandbox without knowing the provider."""

    provider: str
    token: str
    """A credential the sandbox accepts when started with ``options``; goes in the account's
    ``token`` (or whatever the adapter derives its credential from)."""
    options: Mapping[str, Any]
    """Sandbox start options (``start_sandbox(provider, **options)``) that make ``token`` valid."""
    account: Mapping[str, Any]
    """Provider-specific ``[accounts.NAME]`` keys that fit this sandbox (e.g. Refrens
    ``url_key``); ``provider``, ``base_url``, ``token``, ``rate_limit`` and ``concurrency``
    are added by the caller."""
    failures: Mapping[Failure, Mapping[str, Any]]
    """For each failure the sandbox can simulate, the ``POST /_sandbox/state`` body that makes
    every following create fail that way. A failure the provider does not have is absent."""
    rejected: Callable[[dict[str, Any]], dict[str, Any]]
    """A valid canonical payload changed so that our validation accepts it but the provider
    refuses the data (dead-lettered as ``rejected``)."""
    identity: Callable[[Mapping[str, Any]], str | None]
    """Given one record of ``/_sandbox/created``: the invoice number it was created with when
    ``numbers_invoices``, else the idempotency key it was tagged with."""
    numbers_invoices: bool
    """The provider keeps our invoice number and refuses a repeated one (BillClap, Refrens);
    False when it numbers invoices itself (Billit), where ``identity`` gives the tag's key."""
    reconciles: bool
    """After an attempt whose outcome is unknown, the adapter finds the earlier invoice (lookup
    or tag scan) and answers ``Synced(recovered=True)`` instead of creating a second one."""
    sample_options: Callable[[int], dict[str, Any]] = field(default=lambda _index: {})
    """``provider_options`` for sample invoice ``index`` (demo, e2e), e.g. a required id."""
    unsupported: frozenset[str] = frozenset()
    """Canonical top-level fields the provider has no place for: the adapter refuses an invoice
    that sets one (``invalid_payload``) rather than send a different document."""
    currency: str = "INR"
    """The currency of the sample invoices the demo sends this provider (``worker.demo``
    has shops for ``INR`` and ``EUR``); a provider that bills in one currency only says which."""
    unlimited: Mapping[str, Any] = field(default_factory=dict)
    """Sandbox start options, merged over ``options``, that lift the provider's own request
    rate limit, so a bulk run (the demo) is paced by the worker's config alone. Empty when the
    sandbox has no such limit."""
    limited_credits: Callable[[int], Mapping[str, Any]] | None = None
    """Sandbox start options, merged over ``options``, with which exactly ``n`` creates succeed
    and every later one fails as ``credits_expired`` (the demo's trial account). None when the
    sandbox cannot count credits; the demo then shows that scenario for the other providers."""
