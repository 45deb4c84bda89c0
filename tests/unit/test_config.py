import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import load_settings
from worker.durations import parse_duration, parse_rate
from worker.errors import ConfigError

GOOD = """
database_url = "postgresql://app:s3cret-pw@db/invoices"
[worker]
batch_size = 50
poll_interval = "2s"
lease = "5m"
[accounts.shop]
provider = "billclap"
base_url = "https://api.billclap.com"
token = "tok-123456"
rate_limit = "60/minute"
concurrency = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("250ms", 0.25), ("1h", 3600), ("2", 2), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "per_second"), [("60/minute", 1), ("10/s", 10), ("3600/hour", 1), ("5/10s", 0.5)]
)
def test_rates(text: str, per_second: float) -> None:
    assert parse_rate(text).per_second == pytest.approx(per_second)


def test_toml_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICE_SYNC_WORKER__BATCH_SIZE", "7")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.worker.batch_size == 7  # env over file
    assert settings.worker.poll_interval == 2  # file over default
    assert settings.worker.lease == 300
    assert settings.accounts["shop"].rate_limit.per_second == 1
    assert "s3cret-pw" in settings.secrets()
    assert "tok-123456" in settings.secrets()
    assert "tok-123456" not in repr(settings)


def test_token_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token\n")
    monkeypatch.setenv("SHOP_TOKEN", "env-token")
    base = GOOD.replace('token = "tok-123456"', "")
    from_env = load_settings(write(tmp_path, base + 'token_env = "SHOP_TOKEN"\n'))
    assert from_env.accounts["shop"].resolve_token().get_secret_value() == "env-token"  # type: ignore[union-attr]
    from_file = load_settings(write(tmp_path, base + f'token_file = "{secret}"\n'))
    assert from_file.accounts["shop"].resolve_token().get_secret_value() == "file-token"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (("batch_size = 50", "batch_size = 0"), "worker.batch_size"),
        (('poll_interval = "2s"', 'poll_interval = "soon"'), "worker.poll_interval"),
        (('provider = "billclap"', 'provider = "paypal"'), "accounts.shop.provider"),
        (('rate_limit = "60/minute"', 'rate_limit = "fast"'), "accounts.shop.rate_limit"),
        (('token = "tok-123456"', 'token = "a"\ntoken_env = "B"'), "accounts.shop"),
        (('token = "tok-123456"', ""), "accounts.shop"),
        (("[worker]", "[wroker]"), "wroker"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(
    tmp_path: Path, change: tuple[str, str], names: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD.replace(*change)))
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_cli_reports_bad_config_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("batch_size = 50", "batch_size = -1"))
    done = subprocess.run([sys.executable, "-m", "worker", "--config", str(path), "check-config"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "worker.batch_size" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("value", [True, None, [1], {"s": 1}, float("inf"), float("nan")])
def test_a_duration_of_the_wrong_kind_is_a_value_error(value: object) -> None:
    # pydantic turns only ValueError into a validation error naming the key.
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value", [60, None, ["60/minute"], True])
def test_a_rate_of_the_wrong_kind_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(value)


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://u@h/db", "postgresql://u:pw@h:port/db", "http://h/db"]
)
def test_a_malformed_database_url_is_a_config_error_without_the_url(
    url: str, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'database_url = "{url}"\n')
    with pytest.raises(ConfigError, match=r"^database_url: ") as caught:
        load_settings(path)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql:///db?host=/run/pg"])
def test_socket_and_short_scheme_urls_are_fine(url: str, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'database_url = "{url}"\n')
    assert load_settings(path).database_dsn() == url
