"""The books of an e2e run: where every enqueued key ended up, and what each sandbox created.

``Ledger.read`` gathers the outbox, ``synced`` and ``dead_letter`` tables and every sandbox's
``/_sandbox/created``; ``lost``, ``duplicates`` and ``misplaced_dead`` return what breaks
"never lose, never duplicate" (empty lists when all is well), and ``summary`` is the report a
person can quote. Provider-neutral: an invoice at a provider is recognised by its profile's
``identity(record)`` (our number, or the tag's idempotency key).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from worker.outcome import Reason
from worker.testing.sandbox.profile import SandboxProfile

REASONS = frozenset(r.value for r in Reason)


@dataclass(kw_only=True)
class Ledger:
    enqueued: Mapping[str, tuple[str, dict[str, Any]]]
    """Every key the test enqueued: (account, payload)."""
    accounts: Mapping[str, SandboxProfile]
    """Account name → the profile of the sandbox it talks to."""
    outbox: list[dict[str, Any]]
    synced: list[dict[str, Any]]
    dead: list[dict[str, Any]]
    created: Mapping[str, list[dict[str, Any]]]
    """Account name → the records its sandbox created."""

    @classmethod
    async def read(
        cls,
        dsn: str,
        *,
        enqueued: Mapping[str, tuple[str, dict[str, Any]]],
        accounts: Mapping[str, SandboxProfile],
        created: Mapping[str, list[dict[str, Any]]],
    ) -> Ledger:
        conn = await asyncpg.connect(dsn)
        try:
            outbox = await conn.fetch(
                "SELECT account, idempotency_key, state, attempts, outcome_unknown, last_error "
                "FROM invoice_sync.outbox"
            )
            synced = await conn.fetch(
                "SELECT account, idempotency_key, invoice_number, provider_invoice_id, "
                "recovered, attempts FROM invoice_sync.synced"
            )
            dead = await conn.fetch(
                "SELECT account, idempotency_key, reason, error, attempts "
                "FROM invoice_sync.dead_letter"
            )
        finally:
            await conn.close()
        return cls(
            enqueued=enqueued,
            accounts=accounts,
            outbox=[dict(r) for r in outbox],
            synced=[dict(r) for r in synced],
            dead=[dict(r) for r in dead],
            created=created,
        )

    def lost(self) -> list[str]:
        """Problems with "every key is in exactly one place": lost, doubled or unknown keys."""
        places = Counter(
            (r["account"], r["idempotency_key"]) for r in (*self.outbox, *self.synced, *self.dead)
        )
        expected = {(account, key) for key, (account, _payload) in self.enqueued.items()}
        problems = [f"lost: {key}" for key in sorted(expected - set(places))]
        problems += [f"in {n} places: {key}" for key, n in sorted(places.items()) if n > 1]
        problems += [f"never enqueued: {key}" for key in sorted(set(places) - expected)]
        problems += [
            f"dead-lettered without a known reason: {r['idempotency_key']} {r['reason']!r}"
            for r in self.dead
            if r["reason"] not in REASONS
        ]
        return problems

    def duplicates(self) -> list[str]:
        """Problems with "one invoice per key at the provider"."""
        problems: list[str] = []
        for account, profile in self.accounts.items():
            problems += self._account_duplicates(account, profile)
        return problems

    def _account_duplicates(self, account: str, profile: SandboxProfile) -> list[str]:
        counts = Counter(profile.identity(r) for r in self.created.get(account, []))
        problems = [
            f"{account}: {n} invoices with identity {ident!r}"
            for ident, n in counts.items()
            if n > 1 and ident is not None
        ]
        ours = {self.identity_of(key) for key in self._keys(account)} - {None}
        for row in self._rows(self.synced, account):
            ident = self.identity_of(row["idempotency_key"])
            if ident is not None and counts[ident] != 1:
                problems.append(
                    f"{account}: synced {row['idempotency_key']} but the provider holds "
                    f"{counts[ident]} invoices with identity {ident!r}"
                )
        # Invoices we cannot name (no number at a provider that numbers them itself): at least
        # one per synced such key, at most one per such key that may have reached the provider.
        unnamed = sum(n for ident, n in counts.items() if ident not in ours)
        synced_unnamed = sum(
            self.identity_of(r["idempotency_key"]) is None for r in self._rows(self.synced, account)
        )
        maybe_sent = synced_unnamed + sum(
            self.identity_of(r["idempotency_key"]) is None
            for r in self._rows(self.dead, account)
            if r["reason"] in {"ambiguous", "exhausted"}
        )
        if not synced_unnamed <= unnamed <= maybe_sent:
            problems.append(
                f"{account}: {unnamed} invoices without one of our numbers at the provider, "
                f"expected between {synced_unnamed} (synced) and {maybe_sent} (synced + ambiguous)"
            )
        return problems

    def misplaced_dead(self, allowed: set[str]) -> list[str]:
        """Dead letters a chaos run must not produce: a reason outside ``allowed``, ``ambiguous``
        where a safe path existed, ``duplicate`` where no earlier invoice of ours is found."""
        problems = []
        for row in self.dead:
            key, reason = row["idempotency_key"], row["reason"]
            profile = self.accounts[row["account"]]
            number = self.enqueued[key][1].get("number")
            counts = Counter(profile.identity(r) for r in self.created.get(row["account"], []))
            if reason not in allowed:
                problems.append(f"{key}: {reason}: {row['error']}")
            elif reason == "ambiguous" and (number is not None or not profile.numbers_invoices):
                problems.append(f"{key}: ambiguous although a safe path exists: {row['error']}")
            elif reason == "duplicate" and counts[self.identity_of(key)] != 1:
                problems.append(f"{key}: duplicate but not found at the provider: {row['error']}")
        return problems

    def identity_of(self, key: str) -> str | None:
        """What ``profile.identity`` returns for this key's invoice, when we can know it."""
        account, payload = self.enqueued[key]
        if self.accounts[account].numbers_invoices:
            number = payload.get("number")
            return None if number is None else str(number)
        return key

    def _keys(self, account: str) -> list[str]:
        return [key for key, (acct, _payload) in self.enqueued.items() if acct == account]

    @staticmethod
    def _rows(rows: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["account"] == account]

    def summary(self) -> dict[str, Any]:
        """Counts by account: outcomes, dead letters by reason, recovered, created."""
        report: dict[str, Any] = {}
        for account in sorted(self.accounts):
            dead = Counter(r["reason"] for r in self._rows(self.dead, account))
            synced = self._rows(self.synced, account)
            report[account] = {
                "enqueued": len(self._keys(account)),
                "synced": len(synced),
                "recovered": sum(bool(r["recovered"]) for r in synced),
                "dead_letter": dict(sorted(dead.items())),
                "still_in_outbox": len(self._rows(self.outbox, account)),
                "created_at_provider": len(self.created.get(account, [])),
                "max_attempts_used": max((r["attempts"] for r in synced), default=0),
            }
        return report
