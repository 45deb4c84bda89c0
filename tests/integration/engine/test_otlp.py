"""`[observe] otlp_endpoint`: spans are exported over OTLP/HTTP to a collector (here a local
stand-in that records what it is sent), and `run` without the otel extra says so in one line,
exit 2."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from worker import tracing
from worker.claims import Claimed
from worker.config import ObserveSettings
from worker.engine.otlp import exporting

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP receiver on loopback: the bodies POSTed to /v1/traces."""
    received: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


def claimed(traceparent: str | None) -> Claimed:
    now = datetime.now(UTC)
    return Claimed(
        id=7,
        account="shop",
        idempotency_key="order-7",
        payload="{}",
        attempt=1,
        claim=1,
        first_attempt_at=now,
        created_at=now,
        prior_unknown=False,
        probe=False,
        traceparent=traceparent,
    )


async def test_spans_are_exported_to_the_collector_when_the_run_ends(
    collector: tuple[str, list[bytes]],
) -> None:
    endpoint, received = collector
    observe = ObserveSettings(otlp_endpoint=endpoint, service_name="invoice-sync-test")
    async with exporting(observe):
        assert tracing.ENABLED
        row = claimed(f"00-{TRACE_ID}-{PARENT_ID}-01")
        with (
            tracing.attempt_span(row, "billclap"),
            tracing.http_span("POST", "https://api.billclap.example/v1/invoice"),
        ):
            pass
    assert not tracing.ENABLED
    request = ExportTraceServiceRequest()
    for body in received:
        request.MergeFromString(body)
    (resource,) = request.resource_spans
    names = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert names["service.name"] == "invoice-sync-test"
    spans = {s.name: s for scope in resource.scope_spans for s in scope.spans}
    assert set(spans) == {tracing.ATTEMPT_SPAN, "POST"}
    attempt = spans[tracing.ATTEMPT_SPAN]
    assert attempt.trace_id.hex() == TRACE_ID
    assert attempt.parent_span_id.hex() == PARENT_ID
    assert spans["POST"].parent_span_id == attempt.span_id


async def test_without_an_endpoint_nothing_is_enabled_nor_sent(
    collector: tuple[str, list[bytes]],
) -> None:
    _endpoint, received = collector
    async with exporting(ObserveSettings()):
        assert not tracing.ENABLED
        assert tracing.attempt_span(claimed(None), "billclap") is tracing.NO_ATTEMPT_SPAN
    assert received == []


WITHOUT_OTEL_EXTRA = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
from worker.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_run_without_the_otel_extra_is_one_line_and_exit_2(tmp_path: Path, dsn: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'database_url = "{dsn}"\n'
        '[observe]\nlisten = "off"\notlp_endpoint = "http://127.0.0.1:4318"\n'
        '[accounts.shop]\nprovider = "billclap"\nbase_url = "http://127.0.0.1:9"\n'
        'token = "tok-123456"\nrate_limit = "60/minute"\nconcurrency = 1\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL_EXTRA, "--config", str(config), "run", "--drain"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "observe.otlp_endpoint" in done.stderr
    assert "invoice-sync[otel]" in done.stderr
    assert "Traceback" not in done.stderr
