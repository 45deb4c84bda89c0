"""Helpers for e2e runs of several replicas on one Billit account against a sandbox process:
switching the sandbox's faults, enqueueing in one transaction, and warming every replica."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import asyncpg

from tests.e2e.fleet import Fleet
from tests.factories import invoice
from worker.testing.sandbox.billit.app import PROFILE

# The sandbox account carries the rates the shared test invoices use (18% among them).
VATS = json.dumps(PROFILE.options["vats"], separators=(",", ":"))


def change(url: str, changes: dict[str, object]) -> None:
    """``POST /_sandbox/state``: switch the sandbox's faults or options while it runs."""
    request = urllib.request.Request(  # loopback only
        url + "/_sandbox/state",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


async def enqueue(conn: asyncpg.Connection, account: str, keys: list[str]) -> None:
    """One look-alike invoice per key (same customer, product and total), all at once."""
    async with conn.transaction():
        for key in keys:
            await conn.execute(
                "SELECT invoice_sync.enqueue($1, $2, $3::jsonb)",
                account,
                key,
                json.dumps(invoice(number=key)),
            )


async def warm_every_replica(
    conn: asyncpg.Connection, fleet: Fleet, logs: Path, account: str
) -> None:
    """Rows until each replica has synced one, so each has Billit's account and the customer
    cached: from then on a row costs one request, the create."""
    fleet.wait_started()
    deadline = time.monotonic() + 60
    for n in range(200):
        synced = [
            (logs / f"replica{i}.1.out").read_bytes().count(b'"invoice.synced"')
            for i in range(fleet.size)
        ]
        if all(synced):
            break
        assert time.monotonic() < deadline, synced
        await enqueue(conn, account, [f"warm-{n}"])
        await asyncio.sleep(0.2)
    while await conn.fetchval("SELECT count(*) FROM invoice_sync.outbox"):
        await asyncio.sleep(0.1)
