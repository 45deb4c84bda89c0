"""A reader that stops reading (`invoice-sync schema | head -1`) gets no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_a_closed_pipe_is_no_traceback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the schema is written
    _, err = process.communicate(timeout=60)
    assert err.decode() == ""
    assert process.returncode == 1
