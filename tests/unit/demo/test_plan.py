"""The demo's plan: every registered profile is in it, the planted dead letters are there, and
every sample the demo means to sync is a valid canonical invoice."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date

import pytest
from pydantic import ValidationError

from worker.demo.plan import MIN_INVOICES, build_plan
from worker.invoice import parse_invoice
from worker.testing.sandbox import PROFILES

TODAY = date(2026, 7, 1)


def test_every_profile_gets_a_shop_and_counting_ones_a_trial() -> None:
    plan = build_plan(PROFILES, invoices=1000, seed=1, run="demo-x", today=TODAY)
    names = {a.name for a in plan.accounts}
    for provider, profile in PROFILES.items():
        assert f"shop-{provider}" in names
        assert (f"trial-{provider}" in names) == (profile.limited_credits is not None)
    assert len(plan.rows) == 1000
    assert sum(a.invoices for a in plan.accounts) == 1000
    keys = [r.idempotency_key for r in plan.rows]
    assert len(set(keys)) == len(keys)
    assert all(key.startswith("demo-x-") for key in keys)


def test_samples_are_valid_and_the_planted_failures_are_what_they_claim() -> None:
    plan = build_plan(PROFILES, invoices=2000, seed=3, run="demo-y", today=TODAY)
    planted = Counter(r.expect for r in plan.rows)
    assert planted["rejected"] >= 1
    assert planted["invalid_payload"] >= 1
    for row in plan.rows:
        if row.expect == "invalid_payload":
            with pytest.raises(ValidationError):
                parse_invoice(row.payload)
        else:
            parse_invoice(row.payload)  # rejected ones too: only the provider refuses them


def test_repeated_numbers_reuse_an_earlier_number_of_the_same_account() -> None:
    plan = build_plan(PROFILES, invoices=2000, seed=5, run="demo-z", today=TODAY)
    for account in plan.accounts:
        rows = [r for r in plan.rows if r.account == account.name]
        repeats = [r for r in rows if r.expect == "duplicate"]
        assert bool(repeats) == (account.profile.numbers_invoices and account.credits is None)
        earlier = {r.payload["number"] for r in rows if r.expect == "synced"}
        assert all(r.payload["number"] in earlier for r in repeats)


def test_a_provider_that_numbers_its_own_invoices_and_bills_in_euro() -> None:
    """A made-up fourth provider: the demo needs nothing but its profile."""
    base = next(iter(PROFILES.values()))
    other = dataclasses.replace(
        base,
        provider="euro",
        numbers_invoices=False,
        currency="EUR",
        limited_credits=None,
        sample_options=lambda i: {"kind": i % 2},
    )
    plan = build_plan({"euro": other}, invoices=100, seed=1, run="demo-e", today=TODAY)
    assert [a.name for a in plan.accounts] == ["shop-euro"]
    assert not [r for r in plan.rows if r.expect == "duplicate"]
    good = [r.payload for r in plan.rows if r.expect == "synced"]
    assert {doc["currency"] for doc in good} == {"EUR"}
    assert {doc["customer"]["address"]["country"] for doc in good} == {"GR"}
    assert {doc["provider_options"]["kind"] for doc in good} == {0, 1}


def test_the_same_seed_gives_the_same_invoices() -> None:
    first = build_plan(PROFILES, invoices=100, seed=9, run="r", today=TODAY)
    second = build_plan(PROFILES, invoices=100, seed=9, run="r", today=TODAY)
    third = build_plan(PROFILES, invoices=100, seed=10, run="r", today=TODAY)
    assert first.rows == second.rows
    assert first.rows != third.rows


def test_too_few_invoices_is_refused_with_the_minimum() -> None:
    with pytest.raises(ValueError, match=str(MIN_INVOICES)):
        build_plan(PROFILES, invoices=MIN_INVOICES - 1, seed=1, run="r", today=TODAY)
