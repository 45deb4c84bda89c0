"""``invoice-sync cancel ACCOUNT KEY --reason``: withdraw one invoice that was not sent yet.

It calls ``invoice_sync.cancel()``, the function producers call, so it is as race-safe with
the claims as theirs; the audit entry commits with it. Exit 0 when the row ends cancelled (now
or before), 1 when it cannot be (an attempt under way or unsettled, already synced or dead) or
the key is unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from worker.cli.pool import with_pool
from worker.cli.tables import printable
from worker.config import Settings
from worker.errors import InputError
from worker.store.audit import cli_actor
from worker.store.results import CancelOutcome, Results

EXPLAIN = {
    "in_flight": "an attempt is under way or its outcome is not settled yet; nothing changed, "
    "try again once it has finished",
    "synced": "too late: the provider has the invoice",
    "dead": "too late: it is a dead letter (see `invoice-sync dlq`)",
}


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """Cancel ``args.key`` of ``args.account``; print the state it ends in."""
    for name, value in (("ACCOUNT", args.account), ("KEY", args.key), ("--reason", args.reason)):
        if not value.strip():
            raise InputError(f"cancel: {name} must not be empty")
    outcome: CancelOutcome = asyncio.run(
        with_pool(
            settings,
            lambda pool: Results(pool).invoice_cancel(
                args.account, args.key, reason=args.reason, actor=cli_actor()
            ),
        )
    )
    shown = printable(f"{args.account} {args.key}")
    if outcome.state == "unknown":
        print(f"invoice-sync: cancel: no invoice {shown}", file=sys.stderr)
        return 1
    if outcome.state == "cancelled":
        print(f"{shown}: cancelled" + ("" if outcome.withdrawn else " (already)"))
        return 0
    print(f"{shown}: {outcome.state}: {EXPLAIN[outcome.state]}")
    return 1
