"""The benchmark harness at its smallest size, as CI runs it: every scenario completes and
writes well-formed JSON. No timing is asserted (shared CI machines are noisy); the figures
themselves come from the manual full run (bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCENARIOS = {
    "queue_engine",
    "http_e2e",
    "pickup",
    "rate_fidelity",
    "backlog",
    "bulk_enqueue",
    "many_accounts",
}
# Smaller still than --size small where a scenario's fixed costs allow it.
TINY = [
    "queue_invoices=100",
    "http_invoices=100",
    "http_latency_invoices=50",
    "pickup_inserts=5",
    "rate_seconds=1",
    "enqueue_lines=500",
    "enqueue_per_row=100",
    "many_accounts=100",
    "many_idle_accounts=500",
    "many_idle_seconds=1",
]


def test_every_scenario_runs_and_writes_its_figures(tmp_path: Path) -> None:
    results, summary = tmp_path / "results", tmp_path / "RESULTS.md"
    command = [
        sys.executable,
        "-m",
        "bench",
        "--size",
        "small",
        "--results",
        str(results),
        "--summary",
        str(summary),
    ]
    for item in TINY:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert {p.stem for p in results.glob("*.json")} == SCENARIOS
    for name in SCENARIOS:
        data = json.loads((results / f"{name}.json").read_text())
        assert data["scenario"] == name
        assert data["size"] == "small"
        assert data["figures"], name
        for figure in data["figures"]:
            assert isinstance(figure["measure"], str)
            assert figure["value"] is None or isinstance(figure["value"], int | float), figure
            assert figure["met"] in (True, False, None)
        assert data["run"]["versions"]["postgres"]
        assert data["run"]["machine"]["nproc"] >= 1
        assert f"== {name}:" in done.stdout  # its table was printed
    # Both peers ran in the same run as the engine (PgQueuer at both batch sizes).
    queue_measures = {
        f["measure"] for f in json.loads((results / "queue_engine.json").read_text())["figures"]
    }
    assert {
        "engine CPU per invoice",
        "engine / procrastinate",
        "pgqueuer throughput, batch 10",
        "pgqueuer throughput, batch 100",
        "engine / pgqueuer",
    } <= queue_measures
    many = json.loads((results / "many_accounts.json").read_text())
    assert isinstance(many["peak_rss_mb"], float)
    assert isinstance(many["drain_ratio"], float)
    assert many["details"]["many"]["left_in_outbox"] == 0
    assert many["details"]["one"]["left_in_outbox"] == 0
    text = summary.read_text()
    assert "Every figure against its target" in text
    assert all(f"## {name}:" in text for name in SCENARIOS)
