"""BillClap: the canonical invoice as a ``create-invoice`` request, and its answers as outcomes.

BillClap has one endpoint, ``POST {base_url}/api/web/invoice/create-invoice``, authenticated by
the ``x-api-token`` header (``Authorization: Bearer`` is refused, so it is never sent). There is
no read or lookup endpoint, which shapes the retry story: an invoice that carries a ``number``
is safe to send again, because BillClap refuses a second invoice with the same number per firm;
one without a number is not (``retry_is_safe``).

Mapping notes (``worker.providers.billclap.mapping``): BillClap is rupee-only and has no
currency field, so an invoice in another currency is refused before sending; ``notes`` has no
BillClap field and is dropped. Classification (``worker.providers.billclap.answers``) goes by
the message BillClap sends, not by the HTTP status alone: business errors and server failures
share HTTP 500, and a plan without API access answers HTTP 200.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict

from worker.errors import ProviderError, TransportError
from worker.invoice import Invoice
from worker.logs import DEBUG
from worker.outcome import DeadLetter, Outcome
from worker.providers import http
from worker.providers.base import Attempt, Credentials, HttpTimeouts, ProviderSpec
from worker.providers.billclap.answers import classify, classify_transport_error
from worker.providers.billclap.mapping import (
    build_request,
    prepare,
    refuse_unsupported,
    sent_number,
)
from worker.providers.redaction import scrubbed

log = structlog.get_logger(__name__)

CREATE_PATH = "/api/web/invoice/create-invoice"

__all__ = [
    "SPEC",
    "BillClap",
    "BillClapOptions",
    "build_request",
    "classify",
    "classify_transport_error",
    "refuse_unsupported",
]


class BillClapOptions(BaseModel):
    """BillClap's keys in ``[accounts.NAME]`` beyond the common ones: none; typos are refused."""

    model_config = ConfigDict(extra="forbid")


class BillClap:
    """The adapter for one BillClap account (one token, so one firm).

    It holds one aiohttp session, created on first use so that constructing adapters (config
    checks, tests) opens no sockets.
    """

    name: ClassVar[str] = "billclap"

    def __init__(
        self,
        credentials: Credentials,
        timeouts: HttpTimeouts,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not credentials.token:
            raise ProviderError("billclap: the account has no API token")
        self._url = credentials.base_url.rstrip("/") + CREATE_PATH
        self._token = credentials.token
        self._timeouts = timeouts
        self._now = now or (lambda: datetime.now(UTC))
        self._session: aiohttp.ClientSession | None = None
        # Built once: the same for every request (aiohttp copies them into each request).
        self._secrets = (self._token,)
        self._headers: Mapping[str, str] = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "x-api-token": self._token,
        }

    def __repr__(self) -> str:
        # The token stays out of reprs, which end up in tracebacks and debug logs.
        return f"BillClap(url={self._url!r})"

    def retry_is_safe(self, invoice: Invoice) -> bool:
        """True exactly when the request sent carries a number: BillClap then refuses a second
        copy. Decided from the mapped body, not the canonical invoice, which is not what left."""
        return sent_number(invoice) is not None

    async def create_invoice(self, attempt: Attempt) -> Outcome:
        """Send the invoice once and classify the answer; never raises for an answer or a
        transport failure (both become outcomes)."""
        body = prepare(attempt.invoice)
        if isinstance(body, DeadLetter):
            return body
        started = time.monotonic()
        outcome: Outcome
        try:
            reply = await http.request(
                self._client(),
                "POST",
                self._url,
                headers=self._headers,
                bounds=self._timeouts,
                secrets=self._secrets,
                json_body=body,
            )
        except TransportError as exc:
            outcome = classify_transport_error(exc)
            status: int | str = "transport_error"
        except http.RedirectError as exc:
            outcome = exc.paused("BillClap")
            status = exc.status
        else:
            outcome = classify(reply, attempt, now=self._now)
            status = reply.status
        if DEBUG.wanted():
            log.debug(
                "provider.billclap.answered",
                account=attempt.account,
                outbox_id=attempt.outbox_id,
                status=status,
                outcome=type(outcome).__name__,
                elapsed_ms=round((time.monotonic() - started) * 1000),
            )
        return scrubbed(outcome, self._token)

    async def aclose(self) -> None:
        """Close the session; the adapter may be used again afterwards (a new one opens)."""
        if self._session is not None:
            session, self._session = self._session, None
            await http.close_session(session, self._timeouts)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = http.new_session(self._timeouts)
        return self._session


def _create(credentials: Credentials, options: Any, timeouts: HttpTimeouts) -> BillClap:
    BillClapOptions.model_validate(options if options is not None else {})
    return BillClap(credentials, timeouts)


SPEC = ProviderSpec(name="billclap", options=BillClapOptions, factory=_create)
