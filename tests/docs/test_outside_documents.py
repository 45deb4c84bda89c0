"""Code, tests, docs and deployment files name only documents a reader of this repository can
open: no design notes, review notes or issue numbers kept elsewhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (
    "worker",
    "tests",
    "bench",
    "docs",
    "deploy",
    "config",
    "sql",
    "README.md",
    "CHANGELOG.md",
    "pyproject.toml",
    ".ci",
)
# Written in pieces so that this file does not match itself.
OUTSIDE = re.compile(
    "|".join(
        (
            r"\b(DESIGN|NOTES|STYLE)" + r"\.md\b",
            r"\b[Ii]ssue" + r" \d+",
            r"\bthe issue" + r"'s\b",
            r"\bstop" + r" \d+\b",
        )
    )
)


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *SCANNED], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith("bench/results/")]


def test_no_file_names_a_document_outside_the_repository() -> None:
    files = _tracked_text_files()
    assert len(files) > 100
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
