"""A local BillClap: ``POST /api/web/invoice/create-invoice`` as BillClap's document describes it.

Checks run in this order, each answering as the document says:

1. auth: no ``x-api-token`` → 401 "API token is required" (``Authorization: Bearer`` is not
   a substitute); a session token → 401 "Invalid token type"; an expired token → 401
   "jwt expired"; any other unknown token → 401 "invalid signature" (JWT-shaped) or
   "jwt malformed";
2. plan: ``api_plan=False`` → HTTP 200 ``{"status": false, "error": "You don't have
   permission to access this resource: API integration", ...}``;
3. business: ``business_active=False`` → 500 "Business not found";
4. body: not a JSON object → 500 with the parser's message;
5. validation, then duplicate number, then credits (``worker.testing.sandbox.billclap.books``);
6. create → 200 ``{"result": {"status": true, "message", "invoice_id", "link", "code": 200}}``,
   or the same keys un-nested with ``flat_success=True``.

Handler errors are HTTP 500 ``{"status": false, "error": message}``. Each API token is its own
firm. Options (``BillClapSandboxOptions``) and faults can change at runtime via ``/_sandbox/state``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from worker.testing.sandbox.billclap.books import BillClapBooks
from worker.testing.sandbox.billclap.totals import BillClapRefusal
from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.introspection import BOOKS, sandbox_app
from worker.testing.sandbox.profile import Failure, SandboxProfile

CREATE_PATH = "/api/web/invoice/create-invoice"
PERMISSION_ERROR = "You don't have permission to access this resource: API integration"
PROFILE_TOKEN = "sandbox-token"  # noqa: S105 -- a sandbox credential, public by design


def _overpaid(payload: dict[str, Any]) -> dict[str, Any]:
    # More received than BillClap's computed total: "Received amount can not be greater ...".
    return {**payload, "amount_paid": 10**9}


PROFILE = SandboxProfile(
    provider="billclap",
    token=PROFILE_TOKEN,
    options={"tokens": [PROFILE_TOKEN]},
    account={},
    failures={
        Failure.AUTH_FAILED: {"tokens": []},
        Failure.FORBIDDEN: {"api_plan": False},
        Failure.CREDITS_EXPIRED: {"credits": 0},
    },
    rejected=_overpaid,
    identity=lambda record: record.get("invoice_number"),
    numbers_invoices=True,
    reconciles=False,
    limited_credits=lambda n: {"credits": n},
)


def create_app(*, faults: FaultConfig | None = None, **options: Any) -> web.Application:
    """The BillClap sandbox app; ``options`` are ``BillClapSandboxOptions`` keys (plus ``token``,
    shorthand for one API token)."""
    books = BillClapBooks(**options)
    app = sandbox_app(books, faults, fault_body=_fault_body)
    app.router.add_post(CREATE_PATH, create_invoice)
    return app


def books_of(app: web.Application) -> BillClapBooks:
    """The app's books with their BillClap type, for in-process tests."""
    books = app[BOOKS]
    assert isinstance(books, BillClapBooks)
    return books


async def create_invoice(request: web.Request) -> web.Response:
    """The create-invoice endpoint: the checks in the module docstring's order."""
    books = books_of(request.app)
    token = request.headers.get("x-api-token", "").strip()
    refused = _auth_refusal(books, token) or _account_refusal(books)
    if refused is not None:
        return refused
    try:
        body = await _json_object(request)
        record = books.create_invoice(token, body)
    except BillClapRefusal as exc:
        return _error(exc.message)
    return _success(record, flat=books.options.flat_success)


def _auth_refusal(books: BillClapBooks, token: str) -> web.Response | None:
    options = books.options
    if not token:
        message = "API token is required"
    elif token in options.tokens:
        return None
    elif token in options.session_tokens:
        message = "Invalid token type"
    elif token in options.expired_tokens:
        message = "jwt expired"
    else:
        # What jsonwebtoken says about a token it did not sign, or one that is not a JWT.
        message = "invalid signature" if token.count(".") == 2 else "jwt malformed"
    return web.json_response({"status": False, "message": message}, status=401)


def _account_refusal(books: BillClapBooks) -> web.Response | None:
    if not books.options.api_plan:
        body = {
            "status": False,
            "error": PERMISSION_ERROR,
            "message": "Upgrade your plan to use API integration",
        }
        return web.json_response(body, status=200)
    if not books.options.business_active:
        return _error("Business not found")
    return None


async def _json_object(request: web.Request) -> dict[str, Any]:
    text = (await request.read()).decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BillClapRefusal(
            f"Unexpected token in JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(body, dict):
        # Express hands the handler whatever parsed; a list or string has no party_detail.
        raise BillClapRefusal("Party detail is required")
    return body


def _fault_body(status: int, message: str) -> dict[str, Any]:
    # BillClap's Express app answers its own failures as {"status": false, ...}.
    if status == 429:
        return {"status": False, "message": message}
    return {"status": False, "error": message}


def _error(message: str) -> web.Response:
    return web.json_response({"status": False, "error": message}, status=500)


def _success(record: dict[str, Any], *, flat: bool) -> web.Response:
    result = {
        "status": True,
        "message": "Invoice created successfully",
        "invoice_id": record["invoice_id"],
        "link": record["link"],
        "code": 200,
    }
    return web.json_response(result if flat else {"result": result})
