"""`invoice-sync console` as an operator runs it: it prints its address, serves, stops on
SIGTERM with exit 0; a bad admin token file is one line and exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


def console(config: Path, dsn: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_SYNC_")}
    env["INVOICE_SYNC_DATABASE_URL"] = dsn
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), "console"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_the_console_serves_and_stops_on_sigterm(dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "invoice-sync.toml"
    config.write_text('[console]\nlisten = "127.0.0.1:0"\n')
    process = console(config, dsn)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("console at http://127.0.0.1:"), line
        address = line.split()[2]
        assert "read-only" in line
        with urllib.request.urlopen(address, timeout=10) as answer:
            assert answer.status == 200
            assert "Overview" in answer.read().decode()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_short_admin_token_is_a_config_error(dsn: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tiny-tok\n")
    config = tmp_path / "invoice-sync.toml"
    config.write_text(f'[console]\nadmin_token_file = "{token}"\n')
    process = console(config, dsn)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert stderr.count("\n") == 1, stderr
    assert "console.admin_token_file" in stderr
    assert "tiny-tok" not in stderr
