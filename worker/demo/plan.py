"""What one demo run does: its accounts (one shop per sandbox profile, plus a trial account
whose credits run out) and the outbox rows it writes, with the dead letters it must produce.

Pure and seeded. No provider is named: everything provider-specific comes from
``worker.testing.sandbox.PROFILES``, so a provider that registers a profile is in the demo.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from worker.demo.samples import locale_for, malformed, sample_invoice
from worker.testing.sandbox.profile import SandboxProfile

MIN_INVOICES = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoAccount:
    name: str
    """The account's name in the config and the outbox: ``label``, with the run's prefix when
    the demo writes into a configured database."""
    label: str
    """``shop-billclap``, ``trial-refrens``: what its invoice numbers and keys are made from."""
    profile: SandboxProfile
    sandbox_options: Mapping[str, Any]
    invoices: int
    credits: int | None = None
    """Set for a trial account: this many invoices succeed, the next one finds credits expired."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoRow:
    account: str
    idempotency_key: str
    payload: dict[str, Any]
    expect: str = "synced"
    """What the demo planted: ``synced``, the dead-letter reason the row should end as, or
    ``trial`` (synced until the trial account's credits run out, then held by its pause)."""


@dataclass(frozen=True, kw_only=True)
class DemoPlan:
    run: str
    """The idempotency-key prefix of this run's rows (a configured database may hold others)."""
    accounts: list[DemoAccount]
    rows: list[DemoRow] = field(default_factory=list)

    def rows_for(self, account: str) -> int:
        return sum(1 for row in self.rows if row.account == account)


def build_plan(
    profiles: Mapping[str, SandboxProfile],
    *,
    invoices: int,
    seed: int,
    run: str,
    today: date,
    account_prefix: str = "",
) -> DemoPlan:
    """Spread ``invoices`` over one shop account per profile and a small trial account per
    profile that can count credits; ``ValueError`` when ``invoices`` is too small for the mix.
    ``account_prefix`` goes before every account name (``demo-3f2a1b-shop-billclap``), so a
    shared database's own accounts are never used."""
    if invoices < MIN_INVOICES:
        raise ValueError(
            f"--invoices: at least {MIN_INVOICES}, so the mix has room for its dead letters"
        )
    if not profiles:
        raise ValueError("no sandbox profiles are registered")
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    trials = [p for _, p in sorted(profiles.items()) if p.limited_credits is not None]
    trial_size = max(6, min(30, invoices // 100))
    shop_total = invoices - trial_size * len(trials)
    shops = sorted(profiles.items())
    plan = DemoPlan(run=run, accounts=[])
    for index, (name, profile) in enumerate(shops):
        share = shop_total // len(shops) + (1 if index < shop_total % len(shops) else 0)
        account = DemoAccount(
            name=f"{account_prefix}shop-{name}",
            label=f"shop-{name}",
            profile=profile,
            sandbox_options={**profile.options, **profile.unlimited},
            invoices=share,
        )
        plan.accounts.append(account)
        plan.rows.extend(_shop_rows(rng, account, run, today))
    for profile in trials:
        assert profile.limited_credits is not None
        credits = trial_size * 2 // 3
        options = {**profile.options, **profile.unlimited, **profile.limited_credits(credits)}
        account = DemoAccount(
            name=f"{account_prefix}trial-{profile.provider}",
            label=f"trial-{profile.provider}",
            profile=profile,
            sandbox_options=options,
            invoices=trial_size,
            credits=credits,
        )
        plan.accounts.append(account)
        plan.rows.extend(_plain_rows(rng, account, run, today, range(trial_size), expect="trial"))
    return plan


def _shop_rows(rng: random.Random, account: DemoAccount, run: str, today: date) -> list[DemoRow]:
    """Mostly good invoices; about 0.5% the provider refuses, a few malformed, and (where the
    provider keeps our numbers) a few that reuse a number already sent. The planted ones are
    spread through the account's rows; the repeated numbers come last, after their originals."""
    count = account.invoices
    profile = account.profile
    refused = max(1, count // 200)
    broken = max(1, count // 500)
    repeats = max(1, count // 800) if profile.numbers_invoices else 0
    good = count - refused - broken - repeats
    rows = _plain_rows(rng, account, run, today, range(good))
    for i in range(refused):
        index = good + i
        doc = profile.rejected(_document(rng, account, today, index))
        rows.insert(rng.randrange(len(rows) + 1), _row(account, run, index, doc, "rejected"))
    for i in range(broken):
        index = good + refused + i
        doc = malformed(i, _number(account, index))
        rows.insert(rng.randrange(len(rows) + 1), _row(account, run, index, doc, "invalid_payload"))
    for i in range(repeats):
        index = good + refused + broken + i
        doc = _document(rng, account, today, index)
        doc["number"] = _number(account, rng.randrange(good))
        rows.append(_row(account, run, index, doc, "duplicate"))
    return rows


def _plain_rows(
    rng: random.Random,
    account: DemoAccount,
    run: str,
    today: date,
    indexes: range,
    *,
    expect: str = "synced",
) -> list[DemoRow]:
    return [_row(account, run, i, _document(rng, account, today, i), expect) for i in indexes]


def _document(rng: random.Random, account: DemoAccount, today: date, index: int) -> dict[str, Any]:
    locale = locale_for(account.profile.currency)
    doc = sample_invoice(rng, locale, number=_number(account, index), today=today)
    for key in account.profile.unsupported:  # fields this provider has no place for
        doc.pop(key, None)
    options = account.profile.sample_options(index)
    if options:
        doc["provider_options"] = options
    return doc


def _number(account: DemoAccount, index: int) -> str:
    return f"{account.label.upper()}-{index + 1:06d}"


def _row(
    account: DemoAccount, run: str, index: int, payload: dict[str, Any], expect: str = "synced"
) -> DemoRow:
    return DemoRow(
        account=account.name,
        idempotency_key=f"{run}-{account.label}-{index + 1:06d}",
        payload=payload,
        expect=expect,
    )
