"""OpenTelemetry spans: one per attempt, continuing the producer's trace, and one per provider
HTTP call inside it.

Only the OpenTelemetry API is used here. Until ``enable`` hands this module a tracer provider
(``worker.engine.otlp`` does, at ``run`` start, when ``[observe] otlp_endpoint`` is set),
``ENABLED`` is False and the functions below return shared no-op spans: the hot path then
builds no attribute, parses no traceparent and touches no context. No global tracer provider
is ever set, so nothing else in the process starts exporting because of us.

The attempt span's parent is the context the producer wrote as the row's ``traceparent``
(W3C Trace Context); without one it is a root span. The HTTP span is a child of whatever span
is current, which within an attempt is the attempt's (asyncio tasks carry the context).
Neither carries a body, a header, a query string or an exception message: only codes, ids,
names and a URL without its query, from which the caller has cut the account's secrets.
"""

from __future__ import annotations

from contextvars import ContextVar
from types import TracebackType
from typing import Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from worker import __version__
from worker.claims import Claimed
from worker.outcome import Fate
from worker.policy import Decision

ATTEMPT_SPAN = "invoice_sync.attempt"
# The fates of an attempt that failed: the span's status is ERROR.
FAILED = frozenset({Fate.RETRY_SCHEDULED, Fate.DEAD_LETTERED, Fate.PROBE_FAILED})

ENABLED = False
"""Whether spans are recorded at all: the flag callers check before building anything."""
_tracer: Tracer | None = None
_propagator = TraceContextTextMapPropagator()
# The attempt under way in this task, so its provider calls can tell it their status.
_current_attempt: ContextVar[_LiveAttemptSpan | None] = ContextVar(
    "invoice_sync_attempt", default=None
)


def enable(provider: TracerProvider) -> None:
    """Record spans with ``provider`` from now on."""
    global ENABLED, _tracer  # noqa: PLW0603 - the one switch this module exists to hold
    _tracer = provider.get_tracer("invoice_sync", __version__)
    ENABLED = True


def disable() -> None:
    """Back to no-op spans (shutdown, and tests)."""
    global ENABLED, _tracer  # noqa: PLW0603 - see enable
    ENABLED = False
    _tracer = None


class _NoSpan:
    """A span when tracing is off: a context manager that does nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class AttemptSpan(_NoSpan):
    """What ``attempt_span`` returns when tracing is off: does nothing."""

    def record(self, decision: Decision) -> None:
        """Set the attempt's outcome, HTTP status and reason (no-op here)."""


class HttpSpan(_NoSpan):
    """What ``http_span`` returns when tracing is off: does nothing."""

    def answered(self, status: int) -> None:
        """Set the response's status code (no-op here)."""


NO_ATTEMPT_SPAN = AttemptSpan()
NO_HTTP_SPAN = HttpSpan()


class _Live:
    """A started span, current from ``__enter__`` to ``__exit__``, which ends it. An exception
    sets ERROR and ``error.type`` (its class name): never its message, which may quote a
    provider's answer."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._token: object = None

    def enter(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def exit(self, exc_type: type[BaseException] | None) -> None:
        try:
            if exc_type is not None:
                self.span.set_attribute("error.type", exc_type.__name__)
                self.span.set_status(StatusCode.ERROR)
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self.span.end()


class _LiveAttemptSpan(AttemptSpan):
    def __init__(self, tracer: Tracer, row: Claimed, provider: str) -> None:
        self.last_status: int | None = None
        """The status of the attempt's last answer: a success's outcome carries none."""
        self._attempt_token: object = None
        # An empty context as the fallback: a row without a traceparent starts its own trace
        # rather than joining whatever happened to be current.
        parent = Context()
        if row.traceparent is not None:
            parent = _propagator.extract({"traceparent": row.traceparent}, context=parent)
        self._live = _Live(
            tracer.start_span(
                ATTEMPT_SPAN,
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "invoice_sync.account": row.account,
                    "invoice_sync.idempotency_key": row.idempotency_key,
                    "invoice_sync.outbox_id": row.id,
                    "invoice_sync.attempt": row.attempt,
                    "invoice_sync.provider": provider,
                },
            )
        )

    def __enter__(self) -> Self:
        self._live.enter()
        self._attempt_token = _current_attempt.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current_attempt.reset(self._attempt_token)  # type: ignore[arg-type]
        self._live.exit(exc_type)

    def record(self, decision: Decision) -> None:
        span, resolution = self._live.span, decision.resolution
        span.set_attribute("invoice_sync.outcome", decision.fate.label)
        status = resolution.http_status or self.last_status
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if resolution.kind == "dead" and resolution.reason is not None:
            span.set_attribute("invoice_sync.reason", resolution.reason)
        action = decision.account_action
        if action is not None and action.pause_reason is not None:
            span.set_attribute("invoice_sync.pause_reason", action.pause_reason)
        if decision.fate in FAILED or (action is not None and action.pause_reason is not None):
            span.set_status(StatusCode.ERROR)


class _LiveHttpSpan(HttpSpan):
    def __init__(self, tracer: Tracer, method: str, url: str) -> None:
        self._live = _Live(
            tracer.start_span(
                method,
                kind=SpanKind.CLIENT,
                attributes={"http.request.method": method, "url.full": url},
            )
        )

    def __enter__(self) -> Self:
        self._live.enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.exit(exc_type)

    def answered(self, status: int) -> None:
        self._live.span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self._live.span.set_status(StatusCode.ERROR)
        attempt = _current_attempt.get()
        if attempt is not None:
            attempt.last_status = status


def attempt_span(row: Claimed, provider: str) -> AttemptSpan:
    """The span of one attempt at ``row`` (a context manager; ``record`` its decision), child
    of the producer's context; the shared no-op span when tracing is off."""
    if _tracer is None:
        return NO_ATTEMPT_SPAN
    return _LiveAttemptSpan(_tracer, row, provider)


def http_span(method: str, url: str) -> HttpSpan:
    """The span of one provider request. ``url`` must already be without query, credentials
    or secrets: callers check ``ENABLED`` first and build it only then."""
    if _tracer is None:
        return NO_HTTP_SPAN
    return _LiveHttpSpan(_tracer, method, url)
