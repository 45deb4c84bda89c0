"""Exporting spans over OTLP/HTTP for ``invoice-sync run``, when ``[observe] otlp_endpoint`` is
set: a tracer provider with a batch processor, handed to ``worker.tracing`` for the run.

The SDK and the exporter come with the ``otel`` extra and are imported only here, only when an
endpoint is configured: a worker without one loads neither (the API alone, whose spans are
no-ops). OTLP over HTTP (protobuf) rather than gRPC: it is pure Python, where the gRPC exporter
brings grpcio, a large native wheel, for the same spans. The exporter also reads the standard
``OTEL_EXPORTER_OTLP_*`` variables (headers for a collector's credentials, certificate,
compression, timeout), and the SDK ``OTEL_TRACES_SAMPLER``; the batch processor exports from
its own thread, so a slow collector never holds an attempt up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import structlog

from worker import __version__, tracing
from worker.config import ObserveSettings
from worker.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger(__name__)

MISSING_EXTRA = (
    "observe.otlp_endpoint: exporting spans needs the otel extra, which is not installed "
    "(pip install 'invoice-sync[otel]')"
)


@asynccontextmanager
async def exporting(observe: ObserveSettings) -> AsyncIterator[None]:
    """Spans are recorded and exported inside this block when an endpoint is configured;
    leaving it exports what is still queued. ``ConfigError`` when the extra is missing."""
    url = observe.otlp_traces_url()
    if url is None:
        yield
        return
    provider = start(url, observe.service_name)
    log.info("tracing.exporting", endpoint=url, service_name=observe.service_name)
    try:
        yield
    finally:
        tracing.disable()
        # Blocks until the queue is exported (bounded by the exporter's timeout), so not on
        # the event loop.
        await asyncio.to_thread(provider.shutdown)


def start(url: str, service_name: str) -> TracerProvider:
    """A tracer provider exporting to ``url`` in batches, enabled in ``worker.tracing``."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(MISSING_EXTRA) from exc
    resource = Resource.create({"service.name": service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    tracing.enable(provider)
    return provider
