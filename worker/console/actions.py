"""The console's actions (POST): log in and out, pause and resume, replay and purge, cancel.

The gate in ``app`` has already refused a POST without an admin session and its CSRF token;
each action asks for a reason and acts as the console login, with the audit entry in the
action's own transaction: pause, resume, a replay and a cancel through the same store methods
as the CLI, a purge by id and the bulk actions through ``OperatorActions``. Each renders what
it did.
"""

from __future__ import annotations

import json
import math
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from worker.console.auth import LOGIN_COOKIE, SESSION_COOKIE
from worker.console.cookies import del_cookie, set_cookie
from worker.console.rendering import CONSOLE, SESSION, refused, render
from worker.console.selection import (
    BULK_CAP,
    bounded,
    dead_letter_selection,
    refuse_control_characters,
    row_id,
)
from worker.errors import StaleSelectionError
from worker.invoice import UNSTORABLE, describe_validation_error, parse_invoice, storable_json
from worker.store.accounts import AccountStore
from worker.store.audit import REASON_LIMIT, AuditEntry
from worker.store.dead_letters import REFUSALS, DeadLetterStore, ReplayResult
from worker.store.operator import OperatorActions
from worker.store.results import Results

log = structlog.get_logger("worker.console")

# A corrected payload larger than this is refused here; the outbox's own bound is 256 KiB.
MAX_PAYLOAD_CHARS = 262_144


async def login(request: web.Request) -> web.Response:
    """Log in, unless this address (or everyone) failed too often lately: then a 429 with
    Retry-After, and the token is not even compared (``throttle``)."""
    console = request.app[CONSOLE]
    auth = console.auth
    assert auth is not None  # the gate refuses a POST to a read-only console
    form = await request.post()
    token, user, check = form.get("token"), form.get("user"), form.get("login_csrf")
    if not isinstance(check, str) or not auth.login_csrf_ok(
        request.cookies.get(LOGIN_COOKIE), check
    ):
        return refused(request, "The login form expired; open it again.")
    client = request.remote or "unknown"
    wait = console.login_throttle.wait(client)
    if wait > 0:
        return _too_many_logins(request, wait)
    if not isinstance(user, str) or not isinstance(token, str) or not auth.check_login(user, token):
        failures = console.login_throttle.failed(client)
        # Neither the token nor the user typed is logged: a token pasted into the wrong field
        # would be a secret in the log.
        log.warning("console.login_failed", client=client, failures=failures)
        return render(
            request,
            "login.html",
            status=403,
            title="Log in",
            failed=True,
            login_csrf=auth.login_csrf_token(request.cookies.get(LOGIN_COOKIE, "")),
        )
    console.login_throttle.succeeded(client)
    response = web.HTTPSeeOther("/")
    set_cookie(request, response, SESSION_COOKIE, auth.issue(), path="/", max_age=int(auth.ttl))
    del_cookie(request, response, LOGIN_COOKIE, path="/login")
    raise response


def _too_many_logins(request: web.Request, wait: float) -> web.Response:
    seconds = math.ceil(wait)
    response = render(
        request,
        "message.html",
        status=429,
        title="Too many failed logins",
        message=f"Too many failed logins lately; try again in {seconds} s.",
    )
    response.headers["Retry-After"] = str(seconds)
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session: its cookie is refused from now on, even if a copy of it was kept."""
    auth, session = request.app[CONSOLE].auth, request[SESSION]
    # The gate refuses a POST without an admin credential and a session.
    assert auth is not None
    assert session is not None
    auth.revoke(session)
    response = web.HTTPSeeOther("/")
    del_cookie(request, response, SESSION_COOKIE, path="/")
    raise response


async def _reason(request: web.Request) -> str:
    form = await request.post()
    reason = form.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise web.HTTPBadRequest(text="give a reason: it goes into the audit log")
    refuse_control_characters(reason)
    return reason.strip()[:REASON_LIMIT]


def _actor(request: web.Request) -> str:
    """The console login acting (the audit's actor)."""
    session = request[SESSION]
    assert session is not None  # the gate refuses an action without one
    user: str = session.user
    return user


def _operator(request: web.Request) -> OperatorActions:
    return OperatorActions(request.app[CONSOLE].pool, actor=_actor(request))


def _done(request: web.Request, title: str, message: str, **values: Any) -> web.Response:
    return render(request, "message.html", title=title, message=message, **values)


async def _account(request: web.Request) -> str:
    """The form's ``account``: a field, not a path segment, since a name may hold ``/`` or be
    ``..``, which no URL path carries intact."""
    account = bounded((await request.post()).get("account"))
    if account is None:
        raise web.HTTPBadRequest(text="name the account")
    return account


async def pause(request: web.Request) -> web.Response:
    account = await _account(request)
    actor = _actor(request)
    await AccountStore(request.app[CONSOLE].pool).account_pause(
        account, f"paused by {actor}", actor=actor, reason=await _reason(request)
    )
    return _done(request, "Paused", f"Paused {account}: no claims until it is resumed.")


async def resume(request: web.Request) -> web.Response:
    account = await _account(request)
    resumed = await AccountStore(request.app[CONSOLE].pool).account_resume(
        account, actor=_actor(request), reason=await _reason(request)
    )
    message = f"Resumed {account}." if resumed else f"{account} was not paused."
    return _done(request, "Resumed", message)


def _dead_letter_id(request: web.Request) -> int:
    return row_id(request.match_info["id"], "a dead letter's id")


async def replay(request: web.Request) -> web.Response:
    reason = await _reason(request)
    payload = _corrected_payload((await request.post()).get("payload"))
    audit = AuditEntry(
        actor=_actor(request),
        action="replay",
        target={"corrected_payload": payload is not None},
        rows=0,
        reason=reason,
    )
    results = await DeadLetterStore(request.app[CONSOLE].pool).dead_letter_replay(
        [_dead_letter_id(request)], payload=payload, audit=audit
    )
    return _replayed(request, results)


def _corrected_payload(value: object) -> str | None:
    """The form's corrected payload as the outbox will hold it (None: keep the stored one);
    400 with the validation's one-line reason when it is no invoice."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    if len(text) > MAX_PAYLOAD_CHARS:
        raise web.HTTPBadRequest(text="the corrected payload is over 256 KiB")
    try:
        parse_invoice(text)
        stored = json.dumps(json.loads(text), ensure_ascii=False, allow_nan=False)
    except ValidationError as exc:
        raise web.HTTPBadRequest(
            text=f"the corrected payload is not a valid invoice: {describe_validation_error(exc)}"
        ) from exc
    except ValueError as exc:
        raise web.HTTPBadRequest(text="the corrected payload is not JSON") from exc
    if not storable_json(stored):
        raise web.HTTPBadRequest(
            text=f"the corrected payload {UNSTORABLE}, which PostgreSQL cannot store"
        )
    return stored


def _replayed(request: web.Request, results: list[ReplayResult]) -> web.Response:
    replayed = [r for r in results if r.replayed_to is not None]
    refusals = [(r.id, REFUSALS.get(r.refused or "", r.refused)) for r in results if r.refused]
    return _done(
        request,
        "Replayed",
        f"Replayed {len(replayed)} of {len(results)} dead letters.",
        refusals=refusals,
    )


async def purge(request: web.Request) -> web.Response:
    reason = await _reason(request)
    deleted = await _operator(request).dead_letter_purge([_dead_letter_id(request)], reason=reason)
    return _done(request, "Purged", f"Purged {deleted} dead letter{'s' * (deleted != 1)}.")


async def bulk(request: web.Request) -> web.Response:
    """A bulk replay or purge of the dead letters the preview showed, once the operator
    confirmed their count: the form carries their ids, so rows that joined the filter since
    are left alone, and if some of them went meanwhile nothing is done (a 400)."""
    form = await request.post()
    reason = await _reason(request)
    action = bounded(form.get("action"))
    if action not in {"replay", "purge"}:
        raise web.HTTPBadRequest(text="action: replay or purge")
    if form.get("confirm") != "yes":
        raise web.HTTPBadRequest(text="tick the confirmation: a bulk action needs it")
    # The form's "reason" is the operator's why; the filter's reason code is "filter_reason".
    selection = dead_letter_selection(
        {
            "reason": form.get("filter_reason"),
            "account": form.get("account"),
            "older_than": form.get("older_than"),
        }
    )
    ids = _confirmed_ids(form.get("ids"))
    operator = _operator(request)
    try:
        if action == "replay":
            results = await operator.dead_letter_replay_selection(selection, ids, reason=reason)
            return _replayed(request, results)
        deleted = await operator.dead_letter_purge_selection(selection, ids, reason=reason)
    except StaleSelectionError as exc:
        raise web.HTTPBadRequest(
            text=f"The dead letters changed since the preview ({exc}): nothing was done. "
            "Open the preview again to see what the filter selects now."
        ) from exc
    return _done(request, "Purged", f"Purged {deleted} dead letter{'s' * (deleted != 1)}.")


def _confirmed_ids(value: object) -> list[int]:
    """The preview's ids (comma-separated, at most ``BULK_CAP``)."""
    if not isinstance(value, str) or not value:
        raise web.HTTPBadRequest(text="ids: the form carries the previewed rows; open it again")
    texts = value.split(",")
    if len(texts) > BULK_CAP:
        raise web.HTTPBadRequest(text=f"ids: at most {BULK_CAP}")
    return [row_id(text, "ids") for text in texts]


# What the operator reads when a cancel changed nothing; the states are cancel()'s answers.
CANCEL_REFUSED = {
    "in_flight": "an attempt is under way or its outcome is not settled yet; nothing changed, "
    "try again once it has finished",
    "synced": "too late: the provider has the invoice",
    "dead": "too late: it is a dead letter (replay or purge it instead)",
    "unknown": "no such invoice",
}


async def cancel(request: web.Request) -> web.Response:
    """Withdraw a pending invoice through ``invoice_sync.cancel()`` (as race-safe with the
    claims as a producer's cancel), audited as the login; shows the state it ends in."""
    form = await request.post()
    account, key = bounded(form.get("account")), bounded(form.get("key"))
    if not account or not key:
        raise web.HTTPBadRequest(text="name the invoice: account and key")
    reason = await _reason(request)
    outcome = await Results(request.app[CONSOLE].pool).invoice_cancel(
        account, key, reason=reason, actor=_actor(request)
    )
    if outcome.state == "cancelled":
        done = "Cancelled" if outcome.withdrawn else "Already cancelled"
        message = f"{done}: {account} {key} is cancelled and will never be sent."
    else:
        message = (
            f"Not cancelled: {account} {key} is {outcome.state}: {CANCEL_REFUSED[outcome.state]}."
        )
    return _done(request, "Cancel", message, invoice=(account, key), state=outcome.state)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/accounts/pause", pause)
    app.router.add_post("/accounts/resume", resume)
    app.router.add_post("/dead-letters/bulk", bulk)
    app.router.add_post("/dead-letters/{id}/replay", replay)
    app.router.add_post("/dead-letters/{id}/purge", purge)
    app.router.add_post("/invoice/cancel", cancel)
