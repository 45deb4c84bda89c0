"""A provider that answers success at once, so a run measures the queue engine and nothing else.

It lives in the bench, not in ``worker.providers``: ``register()`` adds it to the registry of
the process that calls it (the bench itself, or ``python -m bench.daemon``), never to a product
install.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from worker.invoice import Invoice
from worker.outcome import Outcome, Synced
from worker.providers.base import Attempt, Credentials, HttpTimeouts, NoOptions, ProviderSpec
from worker.providers.registry import PROVIDERS

NAME = "bench-instant"
# Wall clock of each instance's first call: the start of a throughput window.
FIRST_CALLS: list[float] = []


class InstantProvider:
    name: ClassVar[str] = NAME

    def __init__(self) -> None:
        self.calls = 0

    def retry_is_safe(self, invoice: Invoice) -> bool:
        return True

    async def create_invoice(self, attempt: Attempt) -> Outcome:
        if not self.calls:
            FIRST_CALLS.append(time.time())
        self.calls += 1
        return Synced(
            provider_invoice_id=f"instant-{attempt.outbox_id}",
            invoice_number=attempt.invoice.number,
        )

    async def aclose(self) -> None:
        return None


def _create(credentials: Credentials, options: Any, timeouts: HttpTimeouts) -> InstantProvider:
    return InstantProvider()


SPEC = ProviderSpec(name=NAME, options=NoOptions, factory=_create, needs_token=False)


def register() -> None:
    """Make ``provider = "bench-instant"`` resolvable in this process."""
    PROVIDERS.setdefault(NAME, SPEC)
