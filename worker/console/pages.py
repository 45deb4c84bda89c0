"""The console's pages (GET): each reads the store once or a few times and renders a template.

Lists are keyset-paginated: the "next" link carries the last row's sort key, never an offset.
"""

from __future__ import annotations

from aiohttp import web

from worker.console.auth import LOGIN_COOKIE, new_login_cookie
from worker.console.cookies import set_cookie
from worker.console.overview import read_overview
from worker.console.rendering import CONSOLE, render
from worker.console.selection import (
    BULK_CAP,
    dead_letter_cursor,
    dead_letter_selection,
    query_text,
    row_id,
)
from worker.outcome import Reason
from worker.store.accounts import AccountStore
from worker.store.audit import AuditLog
from worker.store.console import ConsoleStore
from worker.store.dead_letters import DeadLetterStore
from worker.store.story import invoice_story

PAGE = 50


async def overview(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    data = await read_overview(console.pool, console.accounts)
    return render(request, "overview.html", title="Overview", overview=data)


async def invoices(request: web.Request) -> web.Response:
    store = ConsoleStore(request.app[CONSOLE].pool)
    account = query_text(request, "account")
    search = query_text(request, "q")
    after = (query_text(request, "after_account") or "", query_text(request, "after_key") or "")
    if search:
        accounts = [account] if account else await store.console_accounts()
        rows = await store.console_invoice_find(search, accounts=accounts, limit=PAGE)
        more = False
    else:
        rows = await store.console_invoice_page(account=account, after=after, limit=PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
    return render(
        request,
        "invoices.html",
        title="Invoices",
        rows=rows,
        account=account or "",
        search=search or "",
        more=more,
    )


async def invoice(request: web.Request) -> web.Response:
    """One invoice's story (the same as ``invoice-sync show``), as a timeline."""
    account = query_text(request, "account")
    key = query_text(request, "key")
    if not account or not key:
        raise web.HTTPBadRequest(text="name the invoice: ?account=...&key=...")
    story = await invoice_story(request.app[CONSOLE].pool, account, key)
    if story is None:
        raise web.HTTPNotFound(text="no invoice with that account and key")
    return render(request, "invoice.html", title=f"Invoice {key}", story=story)


async def dead_letters(request: web.Request) -> web.Response:
    store = ConsoleStore(request.app[CONSOLE].pool)
    selection = dead_letter_selection(request.query)
    cursor = dead_letter_cursor(query_text(request, "after"))
    rows = await store.console_dead_letter_page(selection, after=cursor, limit=PAGE + 1)
    return render(
        request,
        "dead_letters.html",
        title="Dead letters",
        rows=rows[:PAGE],
        more=len(rows) > PAGE,
        selection=selection,
        query=request.query,
        reasons=list(Reason),
    )


async def dead_letter(request: web.Request) -> web.Response:
    dead_id = row_id(request.match_info["id"], "a dead letter's id")
    row = await DeadLetterStore(request.app[CONSOLE].pool).dead_letter_show(dead_id)
    if row is None:
        raise web.HTTPNotFound(text="no such dead letter")
    return render(request, "dead_letter.html", title=f"Dead letter {dead_id}", row=row)


async def bulk_preview(request: web.Request) -> web.Response:
    """How many rows a bulk replay or purge would touch; the form to confirm it, which carries
    their ids (the action touches these and no other)."""
    action = query_text(request, "action")
    if action not in {"replay", "purge"}:
        raise web.HTTPBadRequest(text="action: replay or purge")
    selection = dead_letter_selection(request.query)
    ids = await ConsoleStore(request.app[CONSOLE].pool).console_dead_letter_preview(
        selection, BULK_CAP + 1
    )
    return render(
        request,
        "bulk.html",
        title=f"Bulk {action}",
        action=action,
        selection=selection,
        ids=ids[:BULK_CAP],
        count=min(len(ids), BULK_CAP),
        over_cap=len(ids) > BULK_CAP,
        cap=BULK_CAP,
        query=request.query,
    )


async def accounts(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    states = {s.account: s for s in await AccountStore(console.pool).account_state_list()}
    known = await ConsoleStore(console.pool).console_accounts()
    names = sorted(set(known) | set(console.accounts))
    return render(
        request,
        "accounts.html",
        title="Accounts",
        names=names,
        states=states,
        configured=console.accounts,
    )


async def audit(request: web.Request) -> web.Response:
    before_text = query_text(request, "before")
    before = row_id(before_text, "before") if before_text else None
    entries = await AuditLog(request.app[CONSOLE].pool).audit_list(before=before, limit=PAGE + 1)
    return render(
        request,
        "audit.html",
        title="Audit log",
        entries=entries[:PAGE],
        more=len(entries) > PAGE,
    )


async def login(request: web.Request) -> web.Response:
    auth = request.app[CONSOLE].auth
    if auth is None:
        return render(request, "login.html", title="Log in", login_csrf="", failed=False)
    cookie = new_login_cookie()
    response = render(
        request,
        "login.html",
        title="Log in",
        login_csrf=auth.login_csrf_token(cookie),
        failed=False,
    )
    set_cookie(request, response, LOGIN_COOKIE, cookie, path="/login")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", overview)
    app.router.add_get("/invoices", invoices)
    app.router.add_get("/invoice", invoice)
    app.router.add_get("/dead-letters", dead_letters)
    app.router.add_get("/dead-letters/bulk", bulk_preview)
    app.router.add_get("/dead-letters/{id}", dead_letter)
    app.router.add_get("/accounts", accounts)
    app.router.add_get("/audit", audit)
    app.router.add_get("/login", login)
