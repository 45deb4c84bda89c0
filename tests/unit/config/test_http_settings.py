"""``[http] max_response_size``: 1 MiB unless set, in bytes or with a unit, never tiny."""

from pathlib import Path

import pytest

from worker.config import load_settings
from worker.engine.runtimes import build_runtimes
from worker.errors import ConfigError

ACCOUNT = """
database_url = "postgresql://app@db/invoices"
[accounts.shop]
provider = "billclap"
base_url = "https://api.billclap.com"
token = "tok-123456"
"""


def settings_with(tmp_path: Path, http: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(ACCOUNT + "[http]\n" + http + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "size"),
    [
        ("", 1024 * 1024),
        ('max_response_size = "4MiB"', 4 * 1024 * 1024),
        ("max_response_size = 65536", 65536),
    ],
)
def test_the_answer_bound_reaches_every_adapter(tmp_path: Path, line: str, size: int) -> None:
    settings = load_settings(settings_with(tmp_path, line))
    assert settings.http.max_response_size == size
    provider = build_runtimes(settings)["shop"].provider
    assert provider._timeouts.max_response_size == size  # type: ignore[attr-defined]


def test_a_tiny_or_unreadable_bound_is_refused_naming_the_key(tmp_path: Path) -> None:
    for value in ("10", '"lots"'):
        with pytest.raises(ConfigError, match=r"http\.max_response_size"):
            load_settings(settings_with(tmp_path, f"max_response_size = {value}"))
