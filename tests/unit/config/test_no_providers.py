"""``worker.config`` knows no provider: an account's provider options are checked by the
engine, where runtimes are built (``check_accounts``), on the path every command loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import load_settings
from worker.engine.runtimes import build_runtimes, check_accounts, config_secrets
from worker.errors import ConfigError

ACCOUNT = """
[accounts.shop]
provider = "billclap"
base_url = "https://api.billclap.com"
token = "tok-123456"
"""


def test_config_imports_no_provider_and_no_engine() -> None:
    code = (
        "import sys, worker.config\n"
        "print(sorted(m for m in sys.modules if m.startswith(('worker.providers', 'worker.engine'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_provider_options_are_checked_by_the_engine_not_by_loading(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ACCOUNT + "invoice_typo = 1\n")
    settings = load_settings(path)  # the common keys are fine; the provider's are not read here
    for check in (check_accounts, build_runtimes, config_secrets):
        with pytest.raises(ConfigError, match=r"^accounts\.shop\.invoice_typo: Extra inputs"):
            check(settings)


def test_config_secrets_adds_the_options_secrets_to_the_configs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFRENS_SECRET", "env-app-secret")
    path = tmp_path / "c.toml"
    path.write_text(
        ACCOUNT + '\n[accounts.books]\nprovider = "refrens"\nbase_url = "https://api.refrens.com"\n'
        'url_key = "acme"\napp_id = "a"\napp_secret_env = "REFRENS_SECRET"\n'
    )
    settings = load_settings(path)
    assert "tok-123456" in settings.secrets()
    assert "env-app-secret" not in settings.secrets()  # only the provider's options know it
    assert {"tok-123456", "env-app-secret"} <= set(config_secrets(settings))
