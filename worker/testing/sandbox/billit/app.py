"""A local Billit (billit.io): the ``/v1`` API as Billit's overview and API specification describe it.

Routes (every one needs ``Authorization: Bearer <token>``, else 401 "Authorization Required"):

- ``POST /v1``: ``{"msg": "Hello from the Billit API"}``, the documented credentials check;
- ``GET /v1/account``: ``data`` with ``isBlocked``/``isSuspended`` and ``relations`` (biller,
  paymentMethods, vats ``{"id", "name": "24%", "value": 24}``, settings, subscription);
- ``GET /v1/customers?q=`` (VAT id, phone, mobile, e-mail contain ``q``) and ``POST`` (201);
- ``POST /v1/invoices`` (201 ``{"data": invoice}``: uuid, number per series, type, permalink,
  amounts, tags as objects), ``GET /v1/invoices?per_page=&page=`` (newest first, at most 250
  a page, ``{data, links, meta}``, items without tags), ``GET /v1/invoices/{uuid}`` (with tags).

Errors are ``{"statusCode", "error", "message", "data"}``, plus ``errors`` on 422; unknown paths
and methods answer 404 and 405 in that shape. A blocked or suspended account or an expired
subscription answers creates with 403. ``incidents`` makes the next creates answer 400 with
``data.insidentId``. The rate limit is Laravel's fixed window (``billit_books.RateWindow``):
``rate_limit_per_minute`` requests per token, then 429 with ``Retry-After`` and
``X-RateLimit-Limit``/``X-RateLimit-Remaining``; every API request counts, answered or not.
With that limit off (``null``) and the ``limit_rate`` fault on, the answers report the fault's
quota in the same headers instead.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from worker.testing.sandbox.billit.books import BillitBooks, BillitRefusal
from worker.testing.sandbox.faults import FAULTS, INTROSPECTION_PREFIX, FaultConfig
from worker.testing.sandbox.introspection import BOOKS, sandbox_app
from worker.testing.sandbox.profile import Failure, SandboxProfile

PROFILE_TOKEN = "sandbox-token"  # noqa: S105 -- a sandbox credential, public by design
MAX_PER_PAGE, DEFAULT_PER_PAGE = 250, 25
# How the worker marks a Billit invoice as the one made for an idempotency key
# (docs/producers.md): ``invoice-sync:<key>``, or ``invoice-sync:sha256:<digest>`` for a key
# too long or unusual to travel verbatim, which cannot be read back.
OUR_TAG, HASHED = "invoice-sync:", "sha256:"


def _unknown_invoice_type(payload: dict[str, Any]) -> dict[str, Any]:
    # Valid for us; Billit answers 422 "The selected invoice type id is invalid."
    options = payload.get("provider_options") or {}
    return {**payload, "provider_options": {**options, "invoiceTypeId": 999}}


def _identity(record: Mapping[str, Any]) -> str | None:
    """The idempotency key the first of the worker's readable tags carries, or None."""
    for tag in record.get("tags") or []:
        if not isinstance(tag, str) or not tag.startswith(OUR_TAG):
            continue
        key = tag.removeprefix(OUR_TAG)
        if not key.startswith(HASHED):
            return key
    return None


PROFILE = SandboxProfile(
    provider="billit",
    token=PROFILE_TOKEN,
    # Billit lists each account's vats in /account; this account has the rates the shared
    # test invoices use (factories: 0, 5, 12, 18) besides Greece's.
    options={
        "tokens": [PROFILE_TOKEN],
        # Billit's 60 a minute would make every bulk test and the demo take many minutes; the
        # limit itself is tested with a lower value where it is the subject.
        "rate_limit_per_minute": 6000,
        "vats": [
            {"id": 1, "name": "24%", "value": 24},
            {"id": 2, "name": "13%", "value": 13},
            {"id": 3, "name": "6%", "value": 6},
            {"id": 4, "name": "0%", "value": 0},
            {"id": 5, "name": "18%", "value": 18},
            {"id": 6, "name": "12%", "value": 12},
            {"id": 7, "name": "5%", "value": 5},
        ],
    },
    # 100 times Billit's quota lets invoices pile up 100 times faster than on Billit: a tag
    # scan after an unknown outcome must then reach further back than the default 8 pages
    # (2,000 invoices, half an hour of Billit's real quota; seconds of this one).
    account={"invoice_type_id": 1, "currency": "INR", "reconcile_pages": 40},
    failures={
        Failure.AUTH_FAILED: {"tokens": []},
        Failure.FORBIDDEN: {"blocked": True},
    },
    rejected=_unknown_invoice_type,
    identity=_identity,
    numbers_invoices=False,
    reconciles=True,
    # No invoice-level discount field: spreading it over the rows would change the total.
    unsupported=frozenset({"discount"}),
    unlimited={"rate_limit_per_minute": None},
)


def create_app(*, faults: FaultConfig | None = None, **options: Any) -> web.Application:
    """The Billit sandbox app; ``options`` are ``BillitSandboxOptions`` keys (plus ``token``)."""
    books = BillitBooks(**options)
    app = sandbox_app(books, faults, fault_body=_fault_body)
    # After the fault middleware: injected faults are not counted against the rate limit.
    app.middlewares.append(billit_middleware)
    app.router.add_post("/v1", hello)
    app.router.add_get("/v1/account", account)
    app.router.add_get("/v1/customers", list_customers)
    app.router.add_post("/v1/customers", create_customer)
    app.router.add_get("/v1/invoices", list_invoices)
    app.router.add_post("/v1/invoices", create_invoice)
    app.router.add_get("/v1/invoices/{uuid}", get_invoice)
    return app


def books_of(app: web.Application) -> BillitBooks:
    """The app's books with their Billit type, for in-process tests."""
    books = app[BOOKS]
    assert isinstance(books, BillitBooks)
    return books


@web.middleware
async def billit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Rate limit, bearer auth, and Billit's error shape for unknown paths and methods."""
    if request.path.startswith(INTROSPECTION_PREFIX):
        return await handler(request)
    books = books_of(request.app)
    token = _bearer(request)
    allowed, remaining, left = books.throttle(token or f"ip:{request.remote}")
    limit = books.options.rate_limit_per_minute
    if not allowed:
        return _too_many(limit or 0, left)
    if token is None or token not in books.options.tokens:
        response: web.StreamResponse = error(401, "Authorization Required")
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status not in (404, 405):
                raise
            response = error(exc.status, _route_message(exc.status, request))
    if limit is not None:
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
    elif (faults := request.app[FAULTS]).config.limit_rate:
        # The quota a rate-limit fault enforces (a plan counting per second, say), reported
        # as Billit reports its own: no reset header until a request is refused.
        response.headers["X-RateLimit-Limit"] = f"{faults.config.limit_burst:g}"
        response.headers["X-RateLimit-Remaining"] = str(faults.remaining())
    return response


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"msg": "Hello from the Billit API"})


async def account(request: web.Request) -> web.Response:
    return web.json_response({"data": books_of(request.app).account()})


async def list_customers(request: web.Request) -> web.Response:
    found = books_of(request.app).search_customers(request.query.get("q"))
    return web.json_response(_page(request, found))


async def create_customer(request: web.Request) -> web.Response:
    books = books_of(request.app)
    try:
        _refuse_if_forbidden(books)
        customer = books.create_customer(await _json_object(request))
    except BillitRefusal as exc:
        return _refused(exc)
    return web.json_response({"data": customer}, status=201)


async def create_invoice(request: web.Request) -> web.Response:
    books = books_of(request.app)
    try:
        _refuse_if_forbidden(books)
        record = books.create_invoice(await _json_object(request))
    except BillitRefusal as exc:
        return _refused(exc)
    return web.json_response({"data": _invoice(books, record, detail=True)}, status=201)


async def list_invoices(request: web.Request) -> web.Response:
    books = books_of(request.app)
    # Only the page's records are rendered: a list call must not cost the whole ledger.
    oldest = books.ledger.invoices
    page = _page(request, oldest if books.options.list_order == "oldest" else oldest[::-1])
    page["data"] = [_invoice(books, r, detail=False) for r in page["data"]]
    if not books.options.list_created_at:
        for item in page["data"]:
            del item["createdAt"]
    return web.json_response(page)


async def get_invoice(request: web.Request) -> web.Response:
    books = books_of(request.app)
    record = books.invoice(request.match_info["uuid"])
    if record is None:
        return error(404, "Resource not found")
    return web.json_response({"data": _invoice(books, record, detail=True)})


def error(
    status: int, message: str, data: Any = None, errors: Mapping[str, Any] | None = None
) -> web.Response:
    """An answer in Billit's error shape."""
    body: dict[str, Any] = {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "data": data,
    }
    if errors is not None:
        body["errors"] = dict(errors)
    return web.json_response(body, status=status)


def _invoice(books: BillitBooks, record: Mapping[str, Any], *, detail: bool) -> dict[str, Any]:
    customer = books.ledger.customers.get(record["customerId"])
    shown: dict[str, Any] = {
        key: record[key]
        for key in ("uuid", "number", "type", "invoiceDate", "dateExpires", "permalink")
    }
    shown["customer"] = None if customer is None else {k: customer[k] for k in ("id", "company")}
    shown.update({k: record[k] for k in ("netAmount", "vatAmount", "finalAmount", "isPaid")})
    shown["createdAt"] = record["created_at"]
    if detail:
        shown["products"] = record["request"]["products"]
        shown["tags"] = [{"id": i + 1, "name": tag} for i, tag in enumerate(record["tags"])]
    return shown


def _page(request: web.Request, items: Sequence[Any]) -> dict[str, Any]:
    """A Laravel paginator's answer: ``per_page`` capped at 250, ``page`` from 1."""
    per_page = min(MAX_PER_PAGE, max(1, _int(request.query.get("per_page"), DEFAULT_PER_PAGE)))
    page = max(1, _int(request.query.get("page"), 1))
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    path = f"{request.url.origin()}{request.path}"
    first_index = (page - 1) * per_page + 1 if chunk else None
    return {
        "data": list(chunk),
        "links": {
            "first": f"{path}?page=1",
            "last": f"{path}?page={last}",
            "prev": f"{path}?page={page - 1}" if page > 1 else None,
            "next": f"{path}?page={page + 1}" if page < last else None,
        },
        "meta": {
            "current_page": page,
            "from": first_index,
            "last_page": last,
            "path": path,
            "per_page": per_page,
            "to": first_index + len(chunk) - 1 if first_index else None,
            "total": len(items),
        },
    }


def _refuse_if_forbidden(books: BillitBooks) -> None:
    refusal = books.refusal()
    if refusal is not None:
        raise BillitRefusal(403, refusal)


def _refused(exc: BillitRefusal) -> web.Response:
    if exc.status == 422:
        return error(422, exc.message, errors=exc.errors)
    return error(exc.status, exc.message, data=exc.errors)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise BillitRefusal(400, "Malformed JSON body", {"insidentId": _incident()}) from None
    if not isinstance(body, dict):
        raise BillitRefusal(400, "The body must be a JSON object", {"insidentId": _incident()})
    return body


def _too_many(limit: int, left: float) -> web.Response:
    response = error(429, "Too Many Attempts.")
    seconds = max(1, int(-(-left // 1)))
    response.headers["Retry-After"] = str(seconds)
    response.headers["X-RateLimit-Limit"] = str(limit)
    response.headers["X-RateLimit-Remaining"] = "0"
    return response


def _fault_body(status: int, message: str) -> dict[str, Any]:
    if status == 429:
        return {"statusCode": 429, "error": "Too Many Requests", "message": "Too Many Attempts."}
    return {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "data": {"insidentId": _incident()},
    }


def _route_message(status: int, request: web.Request) -> str:
    if status == 404:
        return "Resource not found"
    return f"The {request.method} method is not supported for this route."


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.casefold() == "bearer" else None


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _incident() -> str:
    return secrets.token_hex(8)
