"""A local Refrens: the invoice endpoints and app-secret login as Refrens' document describes them.

- ``POST /authentication`` ``{"strategy": "app-secret", "appId", "appSecret"}`` → 201 with an
  ``accessToken`` lasting ``token_lifetime`` seconds (``worker.testing.sandbox.refrens.tokens``).
- ``POST /businesses/:urlKey/invoices`` → 200 (or 201, ``create_status``) with the created invoice, shaped like the
  document's example (``_id``, ``billType``, ``finalTotal``, ``share.link``/``share.pdf``, ...).
- ``GET /businesses/:urlKey/invoices`` → ``{total, limit, skip, data}``
  (``worker.testing.sandbox.refrens.listing``); ``GET .../invoices/:invoiceId`` → one invoice.

Every business call checks, in order: the bearer token (401 NotAuthenticated), the urlKey
(404 NotFound), the plan (403 Forbidden), then the body: not JSON (400), validation (400
BadRequest with ``errors``, ``worker.testing.sandbox.refrens.schema``), a repeated number (400, or 409
Conflict with ``duplicate_status=409``). Errors are Feathers' (``refrens_errors``). Options
(``RefrensSandboxOptions``) and faults change at runtime via ``/_sandbox/state``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.introspection import BOOKS, sandbox_app
from worker.testing.sandbox.profile import Failure, SandboxProfile
from worker.testing.sandbox.refrens.books import Business, RefrensBooks
from worker.testing.sandbox.refrens.errors import FeathersError
from worker.testing.sandbox.refrens.listing import find

LOGIN_PATH = "/authentication"
INVOICES_PATH = "/businesses/{url_key}/invoices"
INVOICE_PATH = "/businesses/{url_key}/invoices/{invoice_id}"
PROFILE_TOKEN = "sandbox-token"  # noqa: S105 -- a sandbox credential, public by design
PROFILE_URL_KEY = "sandbox-business"


def _unknown_type(payload: dict[str, Any]) -> dict[str, Any]:
    # Passes our validation (provider_options are free-form); Refrens' schema refuses the enum.
    options = {**payload.get("provider_options", {}), "invoiceType": "PROFORMA"}
    return {**payload, "provider_options": options}


def _sample_options(_index: int) -> dict[str, Any]:
    # Refrens requires the customer's country, and the GST state for India.
    return {"billedTo": {"country": "IN", "gstState": "29"}}


PROFILE = SandboxProfile(
    provider="refrens",
    token=PROFILE_TOKEN,
    options={"tokens": [PROFILE_TOKEN], "url_keys": [PROFILE_URL_KEY]},
    account={"url_key": PROFILE_URL_KEY},
    failures={
        Failure.AUTH_FAILED: {"tokens": []},
        Failure.FORBIDDEN: {"api_plan": False},
    },
    rejected=_unknown_type,
    identity=lambda record: record.get("invoiceNumber"),
    numbers_invoices=True,
    reconciles=True,
    sample_options=_sample_options,
)


def create_app(*, faults: FaultConfig | None = None, **options: Any) -> web.Application:
    """The Refrens sandbox app; ``options`` are ``RefrensSandboxOptions`` keys (plus ``token``,
    shorthand for one accepted bearer token)."""
    books = RefrensBooks(**options)
    app = sandbox_app(books, faults, fault_body=_fault_body)
    app.router.add_post(LOGIN_PATH, _feathers(login))
    app.router.add_post(INVOICES_PATH, _feathers(create_invoice))
    app.router.add_get(INVOICES_PATH, _feathers(find_invoices))
    app.router.add_get(INVOICE_PATH, _feathers(get_invoice))
    return app


def _fault_body(status: int, message: str) -> dict[str, Any]:
    # Injected 429s and 500s come from Refrens' Feathers app, so they look like its errors.
    return FeathersError(status, message).as_json()


def books_of(app: web.Application) -> RefrensBooks:
    """The app's books with their Refrens type, for in-process tests."""
    books = app[BOOKS]
    assert isinstance(books, RefrensBooks)
    return books


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _feathers(handler: Handler) -> Handler:
    """The handler with ``FeathersError`` turned into Refrens' error answer."""

    async def answer(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except FeathersError as exc:
            return exc.response()

    return answer


async def login(request: web.Request) -> web.Response:
    body = await _json_body(request)
    return web.json_response(books_of(request.app).login(body), status=201)


async def create_invoice(request: web.Request) -> web.Response:
    books, business = _business(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise FeathersError(400, "Invoice validation failed: the body must be a JSON object")
    record = books.create(business, body)
    return web.json_response(record, status=books.options.create_status)


async def find_invoices(request: web.Request) -> web.Response:
    books, business = _business(request)
    options = books.options
    page = find(
        business.invoices,
        request.query,
        default_limit=options.default_limit,
        max_limit=options.max_limit,
        ignore_filters=options.ignore_filters,
        refuse_filters=options.refuse_filters,
    )
    return web.json_response(page)


async def get_invoice(request: web.Request) -> web.Response:
    books, business = _business(request)
    return web.json_response(books.get(business, request.match_info["invoice_id"]))


def _business(request: web.Request) -> tuple[RefrensBooks, Business]:
    books = books_of(request.app)
    books.authenticate(request.headers.get("Authorization"))
    return books, books.business(request.match_info["url_key"])


async def _json_body(request: web.Request) -> Any:
    text = (await request.read()).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeathersError(400, f"Unexpected token in JSON at position {exc.pos}") from None
