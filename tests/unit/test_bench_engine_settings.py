"""The bench's in-process engine listens on a free port: a run beside a daemon or another bench
(each holding the default 9464 for /metrics) once failed CI's smoke run with "address already
in use"."""

from __future__ import annotations

from bench.engine_run import settings
from worker.config.listen import listen_address


def test_the_bench_engine_takes_a_free_port_for_its_metrics() -> None:
    config = settings(
        "postgresql://bench@127.0.0.1/bench",
        provider="billclap",
        url="http://127.0.0.1:1",
        concurrency=4,
    )
    assert listen_address(config.observe.listen) == ("127.0.0.1", 0)
