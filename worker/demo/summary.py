"""The demo's closing report: synced per account with an example link, dead letters by reason
(what was planted and what the faults added), paused accounts, retries, duration, throughput."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from worker.demo.plan import DemoPlan
from worker.demo.progress import Tally, read_tallies
from worker.store.accounts import AccountStore
from worker.store.database import Pool
from worker.store.demo import demo_examples
from worker.testing.sandbox.server import SandboxHandle

MEANING = {
    "rejected": "the provider refused the data",
    "invalid_payload": "refused by our own validation, never sent",
    "duplicate": "the provider already has an invoice with that number",
    "credits_expired": "the account's invoice credits ran out; the account is paused",
    "auth_failed": "the provider refused the credential; the account is paused",
    "forbidden": "the plan does not allow the call; the account is paused",
    "exhausted": "the retry budget was spent",
    "ambiguous": "an attempt's outcome is unknown and no safe retry or lookup exists",
}
NUMERIC = {"invoices", "synced", "dead", "left", "count", "planted"}
FAULT_NAMES = {
    "error": "HTTP 500",
    "stall": "commit-then-stall",
    "rate429": "HTTP 429",
    "reset": "connection reset",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    provider: str
    number: str | None
    link: str


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """Everything the summary shows, gathered once the worker has stopped."""

    tallies: dict[str, Tally]
    examples: dict[str, Example]
    paused: dict[str, str]
    faults: Counter[str]
    seconds: float


async def gather(
    pool: Pool, plan: DemoPlan, handles: Mapping[str, SandboxHandle], seconds: float
) -> Outcome:
    rows = await demo_examples(pool, plan.run)
    examples = {
        r["account"]: Example(provider=r["provider"], number=r["invoice_number"], link=r["link"])
        for r in rows
    }
    names = {account.name for account in plan.accounts}
    states = await AccountStore(pool).account_state_list()
    paused = {
        s.account: s.pause_reason or "paused" for s in states if s.paused and s.account in names
    }
    faults: Counter[str] = Counter()
    for handle in handles.values():
        faults.update({k: v for k, v in handle.state.faults.injected.items() if k in FAULT_NAMES})
    return Outcome(
        tallies=await read_tallies(pool, plan.run),
        examples=examples,
        paused=paused,
        faults=faults,
        seconds=seconds,
    )


def render(console: Console, plan: DemoPlan, outcome: Outcome) -> None:
    _accounts(console, plan, outcome)
    _dead_letters(console, plan, outcome)
    _retries(console, outcome)
    done = sum(t.done for t in outcome.tallies.values())
    held = sum(t.waiting for name, t in outcome.tallies.items() if name in outcome.paused)
    waiting = f", {held} wait for a paused account," if held else ""
    console.print(
        f"\n[bold]{done}[/bold] of {len(plan.rows)} invoices finished{waiting} in "
        f"[bold]{outcome.seconds:.1f} s[/bold] ({done / max(outcome.seconds, 0.001):.0f} invoices/s)."
    )


def _accounts(console: Console, plan: DemoPlan, outcome: Outcome) -> None:
    table = Table(title="Synced per account", title_justify="left", box=None, pad_edge=False)
    for column in ("account", "provider", "invoices", "synced", "dead", "left", "paused"):
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    for account in plan.accounts:
        tally = outcome.tallies.get(account.name, Tally())
        table.add_row(
            account.name,
            account.profile.provider,
            str(plan.rows_for(account.name)),
            str(tally.synced),
            str(sum(tally.dead.values())),
            str(tally.waiting),
            outcome.paused.get(account.name, "-"),
        )
    console.print(table)
    for account in plan.accounts:
        example = outcome.examples.get(account.name)
        if example is not None:
            console.print(
                f"  {account.name}: invoice {example.number} -> {example.link}",
                soft_wrap=True,
                highlight=False,
            )
    for name, reason in outcome.paused.items():
        console.print(
            f"  {name} is paused ({reason}); its rows wait in the outbox until "
            f"`invoice-sync accounts resume {name}` or a probe succeeds.",
            soft_wrap=True,
            highlight=False,
        )


def _dead_letters(console: Console, plan: DemoPlan, outcome: Outcome) -> None:
    found: Counter[str] = Counter()
    for tally in outcome.tallies.values():
        found.update(tally.dead)
    planted = Counter(row.expect for row in plan.rows if row.expect in MEANING)
    # Each trial account's credits run out once: the row that finds out is dead-lettered.
    planted["credits_expired"] = sum(1 for a in plan.accounts if a.credits is not None)
    table = Table(title="\nDead letters by reason", title_justify="left", box=None, pad_edge=False)
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("planted", justify="right")
    table.add_column("what it means")
    for reason, count in found.most_common():
        table.add_row(reason, str(count), str(planted.get(reason, 0)), MEANING.get(reason, ""))
    if not found:
        table.add_row("(none)", "0", "0", "")
    console.print(table)
    extra = found["duplicate"] - planted["duplicate"]
    if extra > 0:
        console.print(
            f"  {extra} duplicate(s) beyond the planted ones followed a timed-out attempt that the "
            "provider had in fact committed (commit-then-stall) at a provider with no way to look "
            "the invoice up: the retry met the number, and the worker parks the row for a human "
            "instead of guessing. The invoice exists once, never twice.",
            soft_wrap=True,
            highlight=False,
        )
    recovered = sum(t.recovered for t in outcome.tallies.values())
    if recovered:
        console.print(
            f"  {recovered} invoice(s) whose answer was lost the same way were found at the "
            "provider by a lookup and recorded as synced (recovered), without a second send.",
            soft_wrap=True,
            highlight=False,
        )


def _retries(console: Console, outcome: Outcome) -> None:
    retried = sum(t.retried for t in outcome.tallies.values())
    if outcome.faults:
        injected = ", ".join(
            f"{FAULT_NAMES[k]} x{n}" for k, n in sorted(outcome.faults.items()) if n
        )
        console.print(f"\nFaults the sandboxes injected: {injected}.", highlight=False)
    console.print(
        f"Retries: {retried} attempts beyond the first. A 429 holds the account for its "
        "Retry-After and does not spend an attempt.",
        highlight=False,
    )
