"""Billit (billit.io): the canonical invoice as ``POST /v1/invoices``, with the calls around it.

One attempt, in order:

1. refuse what Billit cannot represent (``mapping.refuse_unsupported``), before any I/O;
2. ``GET /v1/account`` (cached, ``account``): vat ids, payment methods, biller, country;
   a blocked or suspended account or an expired subscription pauses the account (forbidden);
3. every tax rate needs a vat id in the account, else the invoice is dead-lettered (rejected);
4. the customer id: given, found, or created once (``customers``);
5. after an unknown outcome, the tag scan (``reconcile``): found → ``Synced(recovered)``;
6. ``POST /v1/invoices``, classified by ``answers``. A 422 naming an id we had cached
   (one from ``/account`` fetched before this attempt, or a customer we found or created
   earlier and Billit has since deleted) forgets it and goes once more through steps 2 to 6
   within the attempt (a 422 means nothing was created).

Billit numbers invoices itself, so no number collision can stop a second copy; the tag scan is
what makes a retry after an unknown outcome safe, hence ``retry_is_safe`` is always True.
Requests carry ``Authorization: Bearer``; the token never reaches an outcome or a log.
Billit allows 60 requests a minute: an attempt makes one to six (account and customer calls
are cached, the scan only runs after an unknown outcome), and a 429 is ``RateLimited``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog

from worker.errors import ProviderError, TransportError
from worker.invoice import Invoice
from worker.logs import DEBUG
from worker.outcome import DeadLetter, Outcome, PauseAccount, PauseReason, Reason, Retry, Synced
from worker.providers import calls, http
from worker.providers.base import Attempt, Credentials, HttpTimeouts, ProviderSpec
from worker.providers.billit.account import AccountCache, AccountFacts, read_account
from worker.providers.billit.answers import (
    RATE_WINDOW,
    Settled,
    classify,
    classify_transport_error,
    refuses_account_ids,
    refuses_customer_id,
)
from worker.providers.billit.client import BillitClient
from worker.providers.billit.customers import CustomerDirectory
from worker.providers.billit.index import INVOICES, ListingIndex
from worker.providers.billit.mapping import (
    build_request,
    gross_total,
    refuse_unmapped,
    refuse_unsupported,
    tag_for,
)
from worker.providers.billit.options import BillitId, BillitOptions
from worker.providers.billit.reconcile import Expected, find_tagged, scan_reads
from worker.providers.redaction import scrubbed

log = structlog.get_logger(__name__)

ACCOUNT, CUSTOMERS = "/v1/account", "/v1/customers"
INCIDENT_MEMORY = 10_000

__all__ = ["SPEC", "Billit", "BillitOptions"]


class Billit:
    """The adapter for one Billit account (one token). Sessions open on first use."""

    name: ClassVar[str] = "billit"

    def __init__(
        self,
        credentials: Credentials,
        timeouts: HttpTimeouts,
        options: BillitOptions | None = None,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not credentials.token:
            raise ProviderError("billit: the account has no API token")
        self._token = credentials.token
        self._http = BillitClient(credentials.base_url, credentials.token, timeouts)
        self._options = options or BillitOptions()
        self._now = now or (lambda: datetime.now(UTC))
        self.account = AccountCache(self._fetch_account, ttl=self._options.account_refresh)
        self.customers = CustomerDirectory()
        self.listing = ListingIndex()
        # Rows whose last answer was a 400 incident: the next one dead-letters (answers).
        self._incidents: OrderedDict[int, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"Billit(base={self._http.base!r})"

    def retry_is_safe(self, invoice: Invoice) -> bool:
        """Always: after an unknown outcome the tag scan runs before anything is sent again,
        and every request carries our tag (``provider_options`` may not touch ``tags``)."""
        return True

    async def create_invoice(self, attempt: Attempt) -> Outcome:
        """Run the steps in the module docstring; never raises for an answer or a transport
        failure (both become outcomes)."""
        started = time.monotonic()
        outcome: Outcome | None = refuse_unsupported(attempt.invoice, self._options)
        if outcome is None:
            try:
                outcome = await self._sync(attempt, retried=False)
            except Settled as exc:
                outcome = exc.outcome
            except http.RedirectError as exc:
                outcome = exc.paused("Billit")
        self._note_incident(attempt.outbox_id, outcome)
        if DEBUG.wanted():
            log.debug(
                "provider.billit.answered",
                account=attempt.account,
                outbox_id=attempt.outbox_id,
                outcome=type(outcome).__name__,
                elapsed_ms=round((time.monotonic() - started) * 1000),
            )
        return scrubbed(outcome, self._token)

    async def aclose(self) -> None:
        """Close the session; the adapter may be used again afterwards (a new one opens)."""
        await self._http.aclose()

    async def _sync(self, attempt: Attempt, *, retried: bool) -> Outcome:
        invoice, seen = attempt.invoice, attempt.outbox_id in self._incidents
        facts, fetched = await self.account.facts()
        if facts.refusal is not None:
            return _forbidden(facts.refusal)
        unmapped = refuse_unmapped(invoice, facts)
        if unmapped is not None:
            if fetched or retried:
                return unmapped
            # A vat added in Billit since the account was cached: look once more.
            self.account.invalidate(facts)
            return await self._sync(attempt, retried=True)
        customer_id = await self._customer_id(invoice, facts, seen)
        tag = tag_for(attempt.idempotency_key)
        body = build_request(
            invoice,
            facts=facts,
            options=self._options,
            customer_id=customer_id,
            tag=tag,
            today=self._now().date(),
        )
        if attempt.prior_unknown:
            settled = await self._settle_earlier(attempt, body, tag, seen)
            if settled is not None:
                return settled
        reply = await self._send(body)
        if not retried and self._forget_stale(reply, facts, fetched, invoice, body):
            return await self._sync(attempt, retried=True)
        what = "invoice create"
        window = attempt.rate_window(RATE_WINDOW)
        outcome = classify(
            reply, what=what, creating=True, seen_incident=seen, window=window, now=self._now
        )
        if isinstance(outcome, Synced):
            # Options may not touch tags, so ours is the invoice's only one.
            self.listing.tags.remember(outcome.provider_invoice_id, frozenset({tag}))
        return outcome

    async def _settle_earlier(
        self, attempt: Attempt, body: Mapping[str, Any], tag: str, seen: bool
    ) -> Outcome | None:
        """After an unknown outcome: the earlier attempt's invoice if the tag scan finds it, a
        retry when the scan took so long that sending is no longer safe, else None (send)."""
        found = await self._reconcile(attempt, body, tag, seen)
        if found is not None:
            return found
        if attempt.send_by is not None and time.monotonic() > attempt.send_by:
            # The scan outlasted the lease's margin: another worker may have the row by now,
            # scan, find nothing of ours yet, and send; sending here as well could make two.
            return Retry(error="Billit: the tag scan outlasted the row's lease; nothing was sent")
        return None

    def _forget_stale(
        self,
        reply: http.Reply,
        facts: AccountFacts,
        fetched: bool,
        invoice: Invoice,
        body: Mapping[str, Any],
    ) -> bool:
        """After a 422 naming an id we cached (account ids, a customer we found or created),
        forget it; True when something was forgotten, so one more try can help."""
        forgot = False
        if refuses_account_ids(reply) and not fetched:
            self.account.invalidate(facts)
            forgot = True
        customer = invoice.customer
        sent = body.get("customerId")
        if refuses_customer_id(reply) and customer and customer.id is None and sent is not None:
            self.customers.forget(sent)
            forgot = True
        return forgot

    async def _customer_id(self, invoice: Invoice, facts: AccountFacts, seen: bool) -> Any:
        if invoice.customer is None:
            return None  # a cash sale: Billit's retail document types need no customer

        async def search(q: str) -> list[dict[str, Any]]:
            with calls.kind(calls.CUSTOMER):
                body = await self._ok("GET", CUSTOMERS, "customer search", seen, params={"q": q})
            found = body.get("data") if isinstance(body, dict) else None
            return [item for item in found or [] if isinstance(item, dict)]

        async def create(payload: dict[str, Any]) -> BillitId:
            with calls.kind(calls.CUSTOMER):
                body = await self._ok("POST", CUSTOMERS, "customer create", seen, json_body=payload)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or data.get("id") is None:
                error = "Billit customer create: answered without a customer id"
                raise Settled(Retry(error=error, http_status=201))
            return data["id"]  # type: ignore[no-any-return]

        return await self.customers.resolve(
            invoice.customer, facts.country, search=search, create=create
        )

    async def _reconcile(
        self, attempt: Attempt, body: Mapping[str, Any], tag: str, seen: bool
    ) -> Synced | None:
        async def get(path: str, params: Mapping[str, str]) -> Any:
            what = "invoice list" if path == INVOICES else "invoice fetch"
            with calls.kind(calls.TAG_SCAN):
                return await self._ok("GET", path, what, seen, params=params, missing_ok=True)

        expected = Expected(
            tag=tag,
            invoice_date=None if attempt.invoice.issue_date is None else str(body["invoiceDate"]),
            total=gross_total(attempt.invoice),
            since=attempt.since,
        )
        reads = scan_reads(attempt, self._options, time.monotonic())
        found = await find_tagged(get, expected, self._options, self.listing, reads=reads)
        if found is not None:
            log.info(
                "provider.billit.recovered",
                account=attempt.account,
                outbox_id=attempt.outbox_id,
                provider_invoice_id=found.provider_invoice_id,
            )
        return found

    async def _fetch_account(self) -> AccountFacts:
        with calls.kind(calls.ACCOUNT):
            body = await self._ok("GET", ACCOUNT, "account", False)
        try:
            return read_account(body, today=self._now().date())
        except ValueError as exc:
            raise Settled(Retry(error=str(exc), http_status=200)) from exc

    async def _ok(
        self,
        method: str,
        path: str,
        what: str,
        seen: bool,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        """The body of a 2xx answer to a call that creates no invoice (None for a 404 when
        ``missing_ok``); any other answer or a transport failure raises ``Settled``."""
        try:
            reply = await self._http.request(method, path, params=params, json_body=json_body)
        except TransportError as exc:
            raise Settled(classify_transport_error(exc, what=what, creating=False)) from exc
        if 200 <= reply.status < 300:
            return reply.body
        if reply.status == 404 and missing_ok:
            return None
        raise Settled(classify(reply, what=what, creating=False, seen_incident=seen, now=self._now))

    async def _send(self, body: dict[str, Any]) -> http.Reply:
        try:
            return await self._http.request("POST", INVOICES, json_body=body)
        except TransportError as exc:
            outcome = classify_transport_error(exc, what="invoice create", creating=True)
            raise Settled(outcome) from exc

    def _note_incident(self, outbox_id: int, outcome: Outcome) -> None:
        if isinstance(outcome, Retry) and outcome.http_status == 400:
            self._incidents[outbox_id] = None
            while len(self._incidents) > INCIDENT_MEMORY:
                self._incidents.popitem(last=False)
        else:
            self._incidents.pop(outbox_id, None)


def _forbidden(refusal: str) -> PauseAccount:
    dead = DeadLetter(reason=Reason.FORBIDDEN, error=f"{refusal} (from /v1/account)")
    return PauseAccount(reason=PauseReason.FORBIDDEN, invoice=dead)


def _create(credentials: Credentials, options: Any, timeouts: HttpTimeouts) -> Billit:
    validated = BillitOptions.model_validate(options if options is not None else {})
    return Billit(credentials, timeouts, validated)


SPEC = ProviderSpec(name="billit", options=BillitOptions, factory=_create)
