"""Attempt spans continue the producer's trace: a producer's span writes its traceparent with the
row, a drain against a provider sandbox records the attempt as that span's child and each HTTP
call (the login too) as the attempt's child, with the attributes operators query by, and no
secret in any of them. Spans are recorded by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.factories import invoice
from tests.fakes import fast_settings
from worker import tracing
from worker.config import Settings
from worker.engine.loop import Engine
from worker.engine.runtimes import build_runtimes
from worker.store.outbox import Outbox
from worker.testing.sandbox import PROFILES
from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

REFRENS = PROFILES["refrens"]
# Planted: the app secret Refrens' login takes. It must reach no span.
APP_SECRET = "planted-app-secret-3c1e9f0b7a"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()
    provider.shutdown()


@pytest.fixture
async def refrens() -> AsyncIterator[SandboxHandle]:
    handle = await start_sandbox("refrens", **REFRENS.options, apps={"trace-app": APP_SECRET})
    yield handle
    await handle.stop()


def refrens_account(sandbox: SandboxHandle) -> dict[str, Any]:
    return {
        "provider": "refrens",
        "base_url": sandbox.url,
        **REFRENS.account,
        "app_id": "trace-app",
        "app_secret": APP_SECRET,
        "rate_limit": "100/second",
        "concurrency": 2,
    }


def payload(number: str) -> str:
    return json.dumps(invoice(number, provider_options=REFRENS.sample_options(0)))


async def drain(pool: asyncpg.Pool, accounts: dict[str, dict[str, Any]]) -> None:
    settings = Settings.model_validate({"accounts": accounts})
    engine = Engine(
        outbox=Outbox(pool, worker_id="test"),
        runtimes=build_runtimes(settings),
        settings=fast_settings(max_attempts=2),
        listen_dsn=None,
        rand=lambda: 0.0,
    )
    await asyncio.wait_for(engine.run(drain=True), 60)


def producer_traceparent(provider: TracerProvider) -> tuple[str, int, int]:
    """A producer's span, ended, and the traceparent it would write with its row."""
    carrier: dict[str, str] = {}
    with provider.get_tracer("shop").start_as_current_span("checkout") as span:
        TraceContextTextMapPropagator().inject(carrier)
        context = span.get_span_context()
    return carrier["traceparent"], context.trace_id, context.span_id


def attempts_by_key(finished: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    attempts = [s for s in finished if s.name == tracing.ATTEMPT_SPAN]
    by_key = {str(s.attributes["invoice_sync.idempotency_key"]): s for s in attempts}  # type: ignore[index]
    assert len(by_key) == len(attempts)
    return by_key


def every_text(span: ReadableSpan) -> list[str]:
    """Every text a span exports: name, attribute values, status, events and their attributes."""
    texts = [span.name, str(span.status.description)]
    texts += [str(v) for v in (span.attributes or {}).values()]
    for event in span.events:
        texts.append(event.name)
        texts += [str(v) for v in (event.attributes or {}).values()]
    return texts


async def test_a_trace_links_the_producer_to_the_attempt_and_its_http_calls(
    pool: asyncpg.Pool, spans: InMemorySpanExporter, refrens: SandboxHandle
) -> None:
    provider = TracerProvider()  # the producer's own SDK, in its own process in real life
    traceparent, trace_id, producer_span = producer_traceparent(provider)
    await pool.execute(
        "SELECT invoice_sync.enqueue('shop', 'traced', $1::jsonb, p_traceparent => $2)",
        payload("TR-1"),
        traceparent,
    )
    await pool.execute(
        "SELECT invoice_sync.enqueue('shop', 'untraced', $1::jsonb)", payload("TR-2")
    )
    rejected = REFRENS.rejected(invoice("TR-3", provider_options=REFRENS.sample_options(0)))
    await pool.execute(
        "SELECT invoice_sync.enqueue('shop', 'rejected', $1::jsonb, NULL, $2)",
        json.dumps(rejected),
        traceparent,
    )
    await drain(pool, {"shop": refrens_account(refrens)})

    finished = spans.get_finished_spans()
    attempts = attempts_by_key(finished)
    assert set(attempts) == {"traced", "untraced", "rejected"}
    traced = attempts["traced"]
    assert traced.parent is not None
    assert (traced.context.trace_id, traced.parent.span_id) == (trace_id, producer_span)
    assert traced.kind is SpanKind.CONSUMER
    assert traced.status.status_code is StatusCode.UNSET
    attributes = dict(traced.attributes or {})
    outbox_id = attributes.pop("invoice_sync.outbox_id")
    assert outbox_id == await pool.fetchval(
        "SELECT outbox_id FROM invoice_sync.synced WHERE idempotency_key = 'traced'"
    )
    assert attributes == {
        "invoice_sync.account": "shop",
        "invoice_sync.idempotency_key": "traced",
        "invoice_sync.attempt": 1,
        "invoice_sync.provider": "refrens",
        "invoice_sync.outcome": "synced",
        "http.response.status_code": 200,
    }

    # A row without a traceparent starts a trace of its own.
    untraced = attempts["untraced"]
    assert untraced.parent is None
    assert untraced.context.trace_id != trace_id

    # The provider refused the data: an error, with the reason code.
    refused = attempts["rejected"]
    assert refused.context.trace_id == trace_id
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["invoice_sync.outcome"] == "dead_lettered"
    assert refused.attributes["invoice_sync.reason"] == "rejected"
    assert refused.attributes["http.response.status_code"] == 400

    # Every HTTP call is a client span under the attempt that made it; the login is one too.
    http = [s for s in finished if s.name != tracing.ATTEMPT_SPAN]
    by_id = {s.context.span_id: s for s in attempts.values()}
    assert http
    for call in http:
        assert call.kind is SpanKind.CLIENT
        assert call.parent is not None
        assert call.parent.span_id in by_id
        assert call.context.trace_id == by_id[call.parent.span_id].context.trace_id
        assert call.attributes is not None
        assert call.name == call.attributes["http.request.method"] == "POST"
        assert str(call.attributes["url.full"]).startswith(refrens.url + "/")
        assert "?" not in str(call.attributes["url.full"])

    def calls_of(attempt: ReadableSpan) -> dict[str, object]:
        return {
            str(s.attributes["url.full"]): s.attributes["http.response.status_code"]
            for s in http
            if s.attributes and s.parent and s.parent.span_id == attempt.context.span_id
        }

    assert 200 in calls_of(traced).values()
    assert 400 in calls_of(refused).values()
    logins = [
        s
        for s in http
        if s.attributes and s.attributes["url.full"] == refrens.url + "/authentication"
    ]
    assert logins, "the login is a span of its own"

    for span in finished:
        assert not [text for text in every_text(span) if APP_SECRET in text], span.name


async def test_an_echoed_token_reaches_no_span(
    pool: asyncpg.Pool, spans: InMemorySpanExporter
) -> None:
    """A provider that echoes the credential in its errors (hostile): the token is in the
    answers, in no span."""
    token = "planted-token-0f9e8d7c6b5a"
    billclap = PROFILES["billclap"]
    sandbox = await start_sandbox(
        "billclap", faults=FaultConfig(echo_rate=0.5, seed=7), tokens=[token]
    )
    try:
        for n in range(6):
            await pool.execute(
                "SELECT invoice_sync.enqueue('shop', $1, $2::jsonb)",
                f"echo-{n}",
                json.dumps(invoice(f"EC-{n}", provider_options=billclap.sample_options(n))),
            )
        account = {
            "provider": "billclap",
            "base_url": sandbox.url,
            **billclap.account,
            "token": token,
            "rate_limit": "100/second",
            "concurrency": 2,
        }
        await drain(pool, {"shop": account})
        echoed = [r for r in sandbox.state.stats.recent if r["fault"] == "echo"]
    finally:
        await sandbox.stop()
    finished = spans.get_finished_spans()
    attempts = [s.attributes for s in finished if s.name == tracing.ATTEMPT_SPAN and s.attributes]
    keys = {a["invoice_sync.idempotency_key"] for a in attempts}
    assert keys == {f"echo-{n}" for n in range(6)}
    assert len(attempts) > len(keys)  # the echoes were retried, each retry a span
    assert {a["invoice_sync.attempt"] for a in attempts} == {1, 2}
    assert echoed, "the sandbox echoed nothing: the test would prove nothing"
    for span in finished:
        assert not [text for text in every_text(span) if token in text], span.name


async def test_no_span_is_recorded_when_tracing_is_off(
    pool: asyncpg.Pool, refrens: SandboxHandle
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traceparent, _trace_id, _span_id = producer_traceparent(provider)
    exporter.clear()
    assert not tracing.ENABLED
    await pool.execute(
        "SELECT invoice_sync.enqueue('shop', 'off', $1::jsonb, p_traceparent => $2)",
        payload("OFF-1"),
        traceparent,
    )
    await drain(pool, {"shop": refrens_account(refrens)})
    assert await pool.fetchval("SELECT count(*) FROM invoice_sync.synced") == 1
    assert exporter.get_finished_spans() == ()
    provider.shutdown()
