"""The order a batch refused for a value is tried in, a row at a time (``isolation_order``):
every row once, and the first tries spread over the accounts and across each one's rows, so
that one account's refused rows never fill them for ever."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from worker.engine.flusher import ISOLATE_TRIES, isolation_order


def batch(sizes: dict[str, int]) -> list[Any]:
    """Rows of each account, the accounts' rows one after the other (as a hostile provider's
    come together)."""
    return [
        SimpleNamespace(row=SimpleNamespace(account=name), n=n)
        for name, size in sizes.items()
        for n in range(size)
    ]


@pytest.mark.parametrize("accounts", [1, 2, 7, 8, 9, 20])
@pytest.mark.parametrize("rows", [0, 1, 7, 8, 9, 100])
def test_every_row_is_tried_once(accounts: int, rows: int) -> None:
    items = batch({f"a{i}": rows for i in range(accounts)})
    for turn in range(3):
        order = isolation_order(items, turn)
        assert sorted(map(id, order)) == sorted(map(id, items))


def test_the_first_tries_hold_a_row_of_each_account_then_rows_across_the_rest() -> None:
    # Two accounts of eight: not all eight first tries from the first account.
    order = isolation_order(batch({"bad": 8, "good": 8}))[:ISOLATE_TRIES]
    assert {r.row.account for r in order[:2]} == {"bad", "good"}
    assert sum(r.row.account == "good" for r in order) >= 3
    # One account, its refused rows first: the first tries reach its later rows too.
    first: list[Any] = isolation_order(batch({"one": 40}))[:ISOLATE_TRIES]
    assert max(r.n for r in first) >= 30


def test_with_more_accounts_than_tries_each_has_its_turn_among_the_first() -> None:
    names = {f"a{i:02}": 2 for i in range(20)}
    items = batch(names)
    seen: set[str] = set()
    for k in range(-(-len(names) // ISOLATE_TRIES)):  # as the flusher turns: 8 accounts on
        first = isolation_order(items, k * ISOLATE_TRIES)[:ISOLATE_TRIES]
        seen |= {r.row.account for r in first}
    assert seen == set(names)
