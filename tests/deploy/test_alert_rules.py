"""deploy/prometheus: the example alert rules pass `promtool check rules`, their unit tests pass
`promtool test rules`, and they use only the metrics docs/operations.md documents."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.tools import promtool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "invoice-sync-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "invoice-sync-alerts.test.yml"


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool()), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_the_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_the_rules_fire_when_they_should() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rejects_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(\n")
    result = run_promtool("check", "rules", str(broken))
    assert result.returncode != 0


def test_every_metric_the_rules_use_is_documented() -> None:
    used = set(re.findall(r"\binvoice_sync_[a-z_]+", RULES.read_text(encoding="utf-8")))
    # Histograms are queried through their _bucket series.
    used = {re.sub(r"_bucket$", "", name) for name in used}
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert used
    for name in used:
        assert f"`{name}" in docs, name
