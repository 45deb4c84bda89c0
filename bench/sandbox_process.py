"""``python -m bench.sandbox_process``: the BillClap sandbox in its own process, with what the
bench needs in front of it.

- A receive stamp: wall-clock time (``time.time``, the producer's clock too: same machine) taken
  when a request enters the server, before the sandbox reads its body; with ``--stamp`` it is
  kept per invoice number, and ``GET /_bench/wait?number=X`` answers as soon as X arrives.
- An enforcing rate limit (``--rate R``): the sandbox's ``limit_rate`` fault, a token bucket of R
  tokens refilled at R per second; a request past it gets 429 with ``Retry-After`` until the
  next token (BillClap has no limit of its own).
- ``GET /_bench/window``: counts by status since the last ``POST /_bench/window`` (a reset).

It prints ``listening on URL`` as its one line, like ``invoice-sync sandbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.server import SandboxHandle, serve_until_signalled, start_sandbox

BENCH_PREFIX = "/_bench/"
SANDBOX_PREFIX = "/_sandbox/"


@dataclass
class Window:
    """What the API saw since the last reset."""

    first: float | None = None
    last: float | None = None
    statuses: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"first": self.first, "last": self.last, "statuses": dict(self.statuses)}


class Stand:
    def __init__(self, *, stamp: bool) -> None:
        self.stamp = stamp
        self.window = Window()
        self.received: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith((BENCH_PREFIX, SANDBOX_PREFIX)):
            return await handler(request)
        entered = time.time()
        window = self.window
        window.first = window.first or entered
        window.last = entered
        response = await handler(request)
        window.statuses[response.status] += 1
        if self.stamp:
            self._arrived(await request.read(), entered)
        return response

    def _arrived(self, body: bytes, entered: float) -> None:
        try:
            number = json.loads(body).get("invoice_number")
        except (ValueError, AttributeError):
            return
        if isinstance(number, str):
            self.received[number] = entered
            waiter = self.waiters.pop(number, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(entered)

    async def wait(self, request: web.Request) -> web.Response:
        number = request.query["number"]
        timeout = float(request.query.get("timeout", "10"))
        if number not in self.received:
            waiter = self.waiters.setdefault(number, asyncio.get_running_loop().create_future())
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except TimeoutError:
                return web.json_response({"number": number, "received": None}, status=404)
        return web.json_response({"number": number, "received": self.received[number]})

    async def get_window(self, request: web.Request) -> web.Response:
        return web.json_response(self.window.as_dict())

    async def reset_window(self, request: web.Request) -> web.Response:
        self.window = Window()
        return web.json_response(self.window.as_dict())


async def serve(args: argparse.Namespace) -> None:
    stand = Stand(stamp=args.stamp)
    # The enforced rate is the sandbox's own fault option: a bucket of R refilled at R/s.
    faults = FaultConfig(latency=args.latency, limit_rate=args.rate, limit_burst=max(args.rate, 1))
    sandbox = await _start(stand, faults, args.token)
    await serve_until_signalled(sandbox, f"listening on {sandbox.url}")


async def _start(stand: Stand, faults: FaultConfig, token: str) -> SandboxHandle:
    # start_sandbox freezes the app when it starts serving, so the bench's middleware and
    # routes go in through a factory wrapper that runs before that.
    from worker.testing.sandbox import SANDBOXES  # noqa: PLC0415
    from worker.testing.sandbox.billclap.app import create_app  # noqa: PLC0415

    def factory(**options: object) -> web.Application:
        app = create_app(**options)  # type: ignore[arg-type]
        app.middlewares.insert(0, stand.middleware)
        app.router.add_get(BENCH_PREFIX + "wait", stand.wait)
        app.router.add_get(BENCH_PREFIX + "window", stand.get_window)
        app.router.add_post(BENCH_PREFIX + "window", stand.reset_window)
        return app

    SANDBOXES["bench-billclap"] = factory
    return await start_sandbox("bench-billclap", faults=faults, tokens=[token])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_process")
    parser.add_argument("--token", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s enforced; 0: none")
    parser.add_argument("--stamp", action="store_true", help="keep receive times per number")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
