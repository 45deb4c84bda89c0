"""deploy/Dockerfile passes hadolint with no finding at any level. No Docker engine runs here, so
the image is validated, not built; the checks below cover what a build would otherwise show."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.tools import hadolint

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def lint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hadolint()), "--no-color", "--failure-threshold", "style", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_hadolint_finds_nothing() -> None:
    result = lint(DOCKERFILE.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_hadolint_does_report_a_careless_dockerfile() -> None:
    careless = "FROM python\nRUN pip install invoice-sync\nRUN apt-get install curl\n"
    result = lint(careless)
    assert result.returncode == 1
    for rule in ("DL3006", "DL3013", "DL3042", "DL3008"):
        assert rule in result.stdout


def test_the_image_is_multi_stage_slim_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["invoice-sync"]' in text
    assert "--no-cache-dir" in text
    # Everything the COPY lines name is in the build context the dockerignore lets through.
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE):
        for item in source.split():
            assert (ROOT / item).exists(), item
            assert f"!{item.rstrip('/')}" in ignore.replace("/\n", "\n"), item


def test_the_image_installs_the_hashed_lock_and_nothing_unpinned() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    runs = re.findall(r"^RUN (.+)$", text.replace("\\\n", " "), flags=re.MULTILINE)
    commands = [c.split() for run in runs for c in run.split("&&")]
    installs = [c for c in commands if c[0].endswith("pip") and c[1] == "install"]
    assert len(installs) == 2, installs
    lock, package = (set(i) for i in installs)
    # The dependencies first, each checked against the hash the lock holds; then the package
    # alone, so that pip cannot resolve anything the lock does not pin.
    assert {"--require-hashes", "--no-deps", "-r", "requirements.lock"} <= lock
    assert "--no-deps" in package
    assert re.search(r"^COPY .*\brequirements\.lock\b", text, flags=re.MULTILINE)
