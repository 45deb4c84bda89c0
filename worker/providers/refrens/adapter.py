"""Refrens: the canonical invoice as ``POST {base}/businesses/{url_key}/invoices``, with lookup.

Authentication is ``Authorization: Bearer <jwt>``: a static token from the config, or app-secret
login (``worker.providers.refrens.auth``) whose token is cached and refreshed once when Refrens
answers 401; only a 401 after that pauses the account. Mapping is in ``mapping``,
classification in ``answers``.

Never lose, never duplicate: an invoice with a number is safe to send again, since Refrens
refuses a second invoice with the same number. When that refusal follows an attempt whose
outcome is unknown, the adapter looks the number up (``lookup``) and, when the invoice
found is billed to the same customer name, answers ``Synced(recovered=True)`` with its ids and
links. A duplicate on a first attempt is a producer's collision: ``DeadLetter(duplicate)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import structlog

from worker.errors import ProviderError, TransportError
from worker.invoice import Invoice
from worker.logs import DEBUG
from worker.outcome import Outcome, PauseAccount, RateLimited, Retry
from worker.providers import calls, http
from worker.providers.base import Attempt, Credentials, HttpTimeouts, ProviderSpec, bounded
from worker.providers.redaction import scrubbed
from worker.providers.refrens.answers import (
    classify,
    classify_refusal,
    classify_transport_error,
    describe,
    duplicate,
    is_duplicate,
    synced_from,
)
from worker.providers.refrens.auth import AppSecretLogin, Bearer, LoginError, StaticToken
from worker.providers.refrens.lookup import ListingError, find_by_number
from worker.providers.refrens.mapping import build_request, refuse_unsupported, sent_number
from worker.providers.refrens.options import RefrensOptions, check_credentials

log = structlog.get_logger(__name__)

__all__ = ["SPEC", "Refrens", "RefrensOptions", "build_request", "classify", "refuse_unsupported"]


class Refrens:
    """The adapter for one Refrens business (``url_key``); one aiohttp session, opened on use."""

    name: ClassVar[str] = "refrens"

    def __init__(
        self,
        credentials: Credentials,
        options: RefrensOptions,
        timeouts: HttpTimeouts,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        base = credentials.base_url.rstrip("/")
        self._url = f"{base}/businesses/{quote(options.url_key, safe='')}/invoices"
        self._options = options
        self._timeouts = timeouts
        self._now = now or (lambda: datetime.now(UTC))
        self._session: aiohttp.ClientSession | None = None
        self.bearer: Bearer
        if options.logs_in:
            assert options.app_id is not None
            assert options.app_secret is not None
            self.bearer = AppSecretLogin(
                base_url=base,
                app_id=options.app_id,
                app_secret=options.app_secret.get_secret_value(),
                client=self._client,
                bounds=timeouts,
            )
        elif credentials.token:
            self.bearer = StaticToken(credentials.token)
        else:
            raise ProviderError("refrens: the account has neither a token nor app_id/app_secret")

    def __repr__(self) -> str:
        return f"Refrens(url={self._url!r})"

    def retry_is_safe(self, invoice: Invoice) -> bool:
        """True exactly when the request sent carries a number: Refrens refuses a second copy,
        and the adapter can look the first one up. Decided from the mapped body, not the
        canonical invoice, which is not what left."""
        return sent_number(invoice) is not None

    async def create_invoice(self, attempt: Attempt) -> Outcome:
        """Send the invoice (logging in first if needed), classify the answer, reconcile a
        duplicate after an unknown outcome; never raises for an answer or a transport failure."""
        refusal = refuse_unsupported(attempt.invoice)
        if refusal is not None:
            return refusal
        started = time.monotonic()
        try:
            outcome = await self._create(attempt)
        except LoginError as exc:
            outcome = exc.outcome
        except http.RedirectError as exc:
            outcome = exc.paused("Refrens")
        if DEBUG.wanted():
            log.debug(
                "provider.refrens.answered",
                account=attempt.account,
                outbox_id=attempt.outbox_id,
                outcome=type(outcome).__name__,
                elapsed_ms=round((time.monotonic() - started) * 1000),
            )
        return scrubbed(outcome, self.bearer.secrets())

    async def aclose(self) -> None:
        """Close the session; the adapter may be used again afterwards (a new one opens)."""
        if self._session is not None:
            session, self._session = self._session, None
            await http.close_session(session, self._timeouts)

    async def _create(self, attempt: Attempt) -> Outcome:
        body = build_request(attempt.invoice)
        try:
            reply = await self._send("POST", self._url, json_body=body)
        except TransportError as exc:
            return classify_transport_error(exc)
        if is_duplicate(reply) and attempt.prior_unknown and attempt.invoice.number:
            return await self._reconcile(attempt, reply, body)
        return classify(reply, attempt, now=self._now)

    async def _reconcile(
        self, attempt: Attempt, refusal: http.Reply, body: Mapping[str, Any]
    ) -> Outcome:
        """After a duplicate answer that may be our own earlier attempt: find that invoice."""
        number = attempt.invoice.number
        assert number is not None
        try:
            found = await find_by_number(
                self._list,
                number,
                page_size=self._options.lookup_page_size,
                pages=self._options.lookup_pages,
            )
        except TransportError as exc:
            return classify_transport_error(exc, sending="lookup")
        except ListingError as exc:
            return _lookup_failed(exc.reply, self._now)
        log.info(
            "provider.refrens.reconciled",
            account=attempt.account,
            outbox_id=attempt.outbox_id,
            found=found.invoice is not None,
            requests=found.requests,
            scanned=found.scanned,
        )
        if found.invoice is None:
            return duplicate(attempt, refusal, evidence=found.describe(number))
        mismatch = _customer_mismatch(found.invoice, body)
        if mismatch is not None:
            return duplicate(attempt, refusal, evidence=mismatch)
        synced = synced_from(found.invoice, attempt, recovered=True)
        assert synced is not None  # lookup hits carry an invoice number, and so an _id
        return synced

    async def _list(self, params: Mapping[str, str]) -> http.Reply:
        with calls.kind(calls.LOOKUP):
            return await self._send("GET", self._url, params=params)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> http.Reply:
        """One call with the bearer token; on 401, once more with a fresh token if the token
        can be renewed (a 401 means Refrens did nothing, so repeating a create is safe)."""
        token = await self.bearer.token()
        reply = await self._call(method, url, token, json_body=json_body, params=params)
        if reply.status != 401 or not self.bearer.refreshable:
            return reply
        fresh = await self.bearer.refresh(token)
        return await self._call(method, url, fresh, json_body=json_body, params=params)

    async def _call(
        self, method: str, url: str, token: str, *, json_body: Any, params: Mapping[str, str] | None
    ) -> http.Reply:
        return await http.request(
            self._client(),
            method,
            url,
            headers=_headers(token),
            bounds=self._timeouts,
            secrets=self.bearer.secrets(),
            json_body=json_body,
            params=params,
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = http.new_session(self._timeouts)
        return self._session


def _headers(token: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {token}",
    }


def _lookup_failed(reply: http.Reply, now: Callable[[], datetime]) -> Outcome:
    """The duplicate answer says the number is taken; only the lookup failed. Account-level
    answers pause the account as on create; anything else is tried again later (the row stays
    "outcome unknown", so the next attempt reconciles again)."""
    outcome = classify_refusal(reply, now=now)
    if isinstance(outcome, RateLimited | PauseAccount):
        return outcome
    return Retry(
        error=describe("refused the lookup after a duplicate answer; will look again", reply),
        http_status=reply.status,
        response=bounded(reply.body),
    )


def _customer_mismatch(found: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    """Why the invoice found is not ours, or None: it must be billed to the same name."""
    ours = _name(body.get("billedTo"))
    theirs = _name(found.get("billedTo"))
    if ours is None or theirs is None or ours == theirs:
        return None
    return (
        f"the invoice found ({found.get('_id')}) is billed to {theirs!r}, not {ours!r}, so "
        "another invoice uses this number"
    )


def _name(billed_to: Any) -> str | None:
    name = billed_to.get("name") if isinstance(billed_to, dict) else None
    return " ".join(name.casefold().split()) if isinstance(name, str) and name.strip() else None


def _create(credentials: Credentials, options: Any, timeouts: HttpTimeouts) -> Refrens:
    validated = (
        options
        if isinstance(options, RefrensOptions)
        else RefrensOptions.model_validate(options if options is not None else {})
    )
    return Refrens(credentials, validated, timeouts)


SPEC = ProviderSpec(
    name="refrens",
    options=RefrensOptions,
    factory=_create,
    needs_token=False,
    check_credentials=check_credentials,
)
