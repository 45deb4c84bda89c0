"""A provider that answers from a script, for engine tests (the database stays real)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from worker.config import HttpSettings, WorkerSettings
from worker.durations import parse_rate
from worker.engine.limits import AccountGate
from worker.engine.runtimes import AccountRuntime
from worker.invoice import Invoice
from worker.outcome import Outcome, Synced
from worker.providers.base import Attempt


class ScriptedProvider:
    name: ClassVar[str] = "scripted"

    def __init__(
        self, answer: Callable[[Attempt], Outcome] | None = None, delay: float = 0.0
    ) -> None:
        self.answer = answer or (lambda a: Synced(provider_invoice_id=f"p-{a.outbox_id}"))
        self.delay = delay
        self.calls: list[Attempt] = []
        self.safe = True

    def retry_is_safe(self, invoice: Invoice) -> bool:
        return self.safe and invoice.number is not None

    async def create_invoice(self, attempt: Attempt) -> Outcome:
        self.calls.append(attempt)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer(attempt)

    async def aclose(self) -> None:
        return None


def runtime(provider: ScriptedProvider, name: str = "shop", concurrency: int = 4) -> AccountRuntime:
    return AccountRuntime(
        name=name,
        provider_name="scripted",
        provider=provider,
        gate=AccountGate(rate=parse_rate("1000/second"), concurrency=concurrency),
        request_timeout=HttpSettings().request_timeout,
    )


def fast_settings(**overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "poll_interval": 0.2,
        "flush_interval": 0.02,
        "base_retry_delay": 0.01,
        "max_retry_delay": 0.05,
        "shutdown_grace": 2,
        "lease": 30,
    }
    values.update(overrides)
    return WorkerSettings.model_validate(values)
