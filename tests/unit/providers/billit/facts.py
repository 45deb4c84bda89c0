"""The day and the account facts that the mapping and the /account tests both assume."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from worker.providers.billit.account import AccountFacts

TODAY = date(2026, 7, 2)
FACTS = AccountFacts(
    vats={Decimal(24): 11, Decimal(13): 12, Decimal(6): 13, Decimal(0): 14},
    payment_methods=(5, 6),
    biller_id=3,
    country="GR",
    refusal=None,
)
