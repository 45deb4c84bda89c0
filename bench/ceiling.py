"""The raw HTTP ceiling: the adapter's own client (``worker.providers.http``) sending the
adapter's own request bodies (``build_request``) at the same concurrency, with no database,
no queue and no per-row work: the most the engine could reach against the same sandbox.

Bodies are built before the clock starts, so the ceiling is the HTTP exchange alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from bench.workload import invoice
from worker.invoice import parse_invoice
from worker.providers import http
from worker.providers.base import HttpTimeouts
from worker.providers.billclap.adapter import CREATE_PATH
from worker.providers.billclap.mapping import build_request


async def ceiling(
    url: str, *, count: int, concurrency: int, prefix: str, token: str
) -> dict[str, Any]:
    bodies = [build_request(parse_invoice(invoice(f"{prefix}-{i}"))) for i in range(1, count + 1)]
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "x-api-token": token,
    }
    # The engine's defaults: HttpSettings' 5 s connect and 30 s total.
    bounds = HttpTimeouts(connect=5.0, total=30.0)
    session = http.new_session(bounds)
    statuses: Counter[int] = Counter()
    queue = iter(bodies)

    async def lane() -> None:
        for body in queue:
            reply = await http.request(
                session, "POST", url + CREATE_PATH, headers=headers, bounds=bounds, json_body=body
            )
            statuses[reply.status] += 1

    try:
        started = time.time()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        ended = time.time()
    finally:
        await session.close()
    return {
        "requests": count,
        "started": started,
        "ended": ended,
        "statuses": dict(statuses),
        "rate": count / (ended - started),
    }
