"""Hear each invoice's final state as it happens, with asyncpg.

LISTEN invoice_sync_result: the worker (or a cancel) sends one small notification per row
that reaches synced, dead or cancelled, after that commits. The notification names the row;
invoice_sync.result() gives the details (the invoice's id, number and link, or why it failed).

    DATABASE_URL=postgresql://shop_web:...@db.example/shop python listen_results.py [--count N]

Prints one JSON line per row to standard output; "listening" goes to standard error once the
LISTEN is in place. Stops after N rows with --count, else runs until interrupted.

Notifications are not stored: a listener that is down misses them. On (re)connecting, catch
up by calling result() for the keys you are still waiting for, then rely on notifications.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import asyncpg

CHANNEL = "invoice_sync_result"
RESULT = "SELECT * FROM invoice_sync.result($1, $2)"


async def listen(count: int | None) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    # Notifications arrive on the connection's reader; queue them and handle them one at a
    # time, so result() runs on the same connection in order.
    arrived: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(
        CHANNEL, lambda _conn, _pid, _channel, payload: arrived.put_nowait(payload)
    )
    print("listening", file=sys.stderr, flush=True)
    try:
        handled = 0
        while count is None or handled < count:
            note = json.loads(await arrived.get())
            row = await conn.fetchrow(RESULT, note["account"], note["idempotency_key"])
            print(
                json.dumps(
                    {
                        "account": note["account"],
                        "idempotency_key": note["idempotency_key"],
                        "outbox_id": note["outbox_id"],
                        "state": row["state"],
                        "provider_invoice_id": row["provider_invoice_id"],
                        "invoice_number": row["invoice_number"],
                        "link": row["link"],
                        "reason": row["reason"],
                    }
                ),
                flush=True,
            )
            handled += 1
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="print invoice results as they happen")
    parser.add_argument("--count", type=int, help="stop after this many results")
    asyncio.run(listen(parser.parse_args().count))


if __name__ == "__main__":
    main()
