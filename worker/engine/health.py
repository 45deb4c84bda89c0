"""The daemon's HTTP face for operators: ``/metrics``, ``/healthz`` and ``/readyz``.

- ``/healthz`` (liveness): the engine's loop went round recently. A loop stuck for longer than
  ``stale_after`` answers 503, so an orchestrator restarts the process.
- ``/readyz`` (readiness): the database answers, its schema is at the version this worker
  needs, and the worker is not shutting down. A database outage makes it 503 while the process
  keeps running and keeps its results in memory.
- ``/metrics``: the Prometheus text format (``worker.engine.metrics``).

The listen address is ``[observe] listen`` (``host:port``; port 0 picks a free one; ``off``
disables the server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from worker.engine.metrics import Metrics
from worker.errors import ConfigError, StoreError
from worker.store import migrate
from worker.store.database import Pool

log = structlog.get_logger(__name__)

READY_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Vitals:
    """What the probes look at, read from the running engine."""

    heartbeat_age: Callable[[], float]
    """Seconds since the engine's loop last went round."""
    stopping: Callable[[], bool]


class HealthServer:
    def __init__(
        self,
        *,
        pool: Pool,
        metrics: Metrics,
        vitals: Vitals,
        stale_after: float,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._vitals = vitals
        self._stale_after = stale_after
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"observe.listen: cannot listen on {host}:{port}: {exc.strerror}"
            ) from None
        self.port = self._runner.addresses[0][1]
        log.info("health.listening", host=host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        age = self._vitals.heartbeat_age()
        alive = age <= self._stale_after
        body = {"status": "ok" if alive else "stalled", "loop_age_seconds": round(age, 3)}
        return web.json_response(body, status=200 if alive else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = {"database": "ok", "schema": "ok", "shutdown": "no"}
        if self._vitals.stopping():
            checks["shutdown"] = "in progress"
        try:
            current = await asyncio.wait_for(migrate.schema_version(self._pool), READY_TIMEOUT)
        except (StoreError, TimeoutError) as exc:
            checks["database"] = str(exc) or "timed out"
            checks["schema"] = "unknown"
        else:
            if current < migrate.latest_version():
                checks["schema"] = f"at {current}, needs {migrate.latest_version()}"
        ready = checks == {"database": "ok", "schema": "ok", "shutdown": "no"}
        self._metrics.database_up.set(1 if checks["database"] == "ok" else 0)
        return web.json_response({"ready": ready, **checks}, status=200 if ready else 503)

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self._metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response
