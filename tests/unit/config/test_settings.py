import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.config import HttpSettings, WorkerSettings, load_settings
from worker.config.console import ConsoleSettings
from worker.durations import parse_duration, parse_rate
from worker.engine.runtimes import check_accounts
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
        check_accounts(load_settings(write(tmp_path, GOOD.replace(*change))))
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_cli_reports_bad_config_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("batch_size = 50", "batch_size = -1"))
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
    "url",
    [
        "not a url",
        "mysql://u@h/db",
        "postgresql://u:pw@h:port/db",
        "http://h/db",
        "postgresql://u:pw@h/db\\n",
        "postgresql://u:pw@h/\\tdb",
    ],
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


def refused(tmp_path: Path, text: str) -> str:
    """The one-line ``ConfigError`` that loading ``text`` and building its accounts raises."""
    from worker.engine.runtimes import build_runtimes  # noqa: PLC0415 - the adapters, for tokens

    with pytest.raises(ConfigError) as caught:
        build_runtimes(load_settings(write(tmp_path, text)))
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("file:///etc/passwd", "https"),
        ("ftp://api.billclap.com", "https"),
        ("not a url", "https"),
        ("", "empty"),
        ("   ", "empty"),
        ("https://", "host"),
        ("https:///path", "host"),
        ("http://api.billclap.com", "loopback"),
        ("http://10.0.0.5:8080", "loopback"),
        # A fully qualified "localhost." may be sent to DNS instead of /etc/hosts.
        ("http://localhost.:8081", "loopback"),
        ("http://localhost..", "loopback"),
        ("https://api.billclap.com/?x=1", "query"),
        ("https://api.billclap.com/#frag", "fragment"),
        ("https://api.billclap.com:port", "port"),
        ("https://api.bill\nclap.com", "control"),
        ("https://api.billclap.com/a b", "space"),
    ],
)
def test_a_base_url_invoice_sync_will_not_call_is_refused(
    tmp_path: Path, base_url: str, says: str
) -> None:
    text = GOOD.replace('"https://api.billclap.com"', json.dumps(base_url))
    message = refused(tmp_path, text)
    assert message.startswith("accounts.shop.base_url: ")
    assert says in message


def test_a_base_url_never_echoes_its_userinfo(tmp_path: Path) -> None:
    text = GOOD.replace("https://api.billclap.com", "https://user:PASS-w0rd@api.billclap.com")
    message = refused(tmp_path, text)
    assert "user or password" in message
    assert "PASS" not in message
    assert "user:" not in message


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.billclap.com",
        "https://api.billclap.com:8443/v1/",
        "http://127.0.0.1:9",
        "http://127.8.9.10",
        "http://localhost:8081",
        "http://[::1]:8081/x",
        "HTTPS://API.BILLCLAP.COM",
    ],
)
def test_https_and_plain_http_to_loopback_are_accepted(tmp_path: Path, base_url: str) -> None:
    settings = load_settings(write(tmp_path, GOOD.replace("https://api.billclap.com", base_url)))
    assert settings.accounts["shop"].base_url == base_url


def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in(tmp_path: Path) -> None:
    from structlog.testing import capture_logs  # noqa: PLC0415

    from worker.engine.runtimes import build_runtimes  # noqa: PLC0415

    text = GOOD.replace("https://", "http://") + "allow_insecure_http = true\n"
    settings = load_settings(write(tmp_path, text))
    with capture_logs() as logs:
        build_runtimes(settings)
    warnings = [e for e in logs if e["event"] == "account.insecure_http"]
    assert warnings == [
        {
            "event": "account.insecure_http",
            "log_level": "warning",
            "account": "shop",
            "host": "api.billclap.com",
        }
    ]


def test_a_token_file_of_two_lines_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("tok-first-line\ntok-second-line\n")
    text = GOOD.replace('token = "tok-123456"', f'token_file = "{secret}"')
    message = refused(tmp_path, text)
    assert "token_file" in message
    assert "control character" in message
    assert "tok-" not in message


@pytest.mark.parametrize("token", ["tok\r\nX-Evil: 1", "tok\u0000nul", "tok\ttab", "tok\u2028ls"])
def test_control_characters_in_an_inline_token_are_refused(tmp_path: Path, token: str) -> None:
    inline = GOOD.replace('"tok-123456"', json.dumps(token))
    assert "control character" in refused(tmp_path, inline)


@pytest.mark.parametrize("token", ["tok\r\nX-Evil: 1", "tok\u0001soh", "tok\ttab", "tok\u2028ls"])
def test_control_characters_in_a_token_from_the_environment_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", token)
    from_env = GOOD.replace('token = "tok-123456"', 'token_env = "SHOP_TOKEN"')
    assert "control character" in refused(tmp_path, from_env)


def test_a_refrens_app_secret_with_a_newline_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_SECRET", "sec-one\nsec-two")
    text = GOOD.replace('provider = "billclap"', 'provider = "refrens"').replace(
        'token = "tok-123456"', 'url_key = "biz"\napp_id = "biz-app"\napp_secret_env = "APP_SECRET"'
    )
    message = refused(tmp_path, text)
    assert "app_secret" in message
    assert "control character" in message
    assert "sec-" not in message


def test_a_token_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(b"tok-\xff\xfe")
    message = refused(tmp_path, GOOD.replace('token = "tok-123456"', f'token_file = "{secret}"'))
    assert "token_file" in message
    assert "UTF-8" in message


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"config file .*: not UTF-8") as caught:
        load_settings(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INVOICE_SYNC_ACCOUNTS", "{bad"),
        ("INVOICE_SYNC_WORKER", '{"batch_size": 5, "token": "tok-987654"'),
    ],
)
def test_malformed_json_in_an_environment_override_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD))
    message = str(caught.value)
    assert "\n" not in message
    assert "not valid JSON" in message
    assert variable.split("__", maxsplit=1)[0] in message
    assert "tok-987654" not in message


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "empty"), ("x" * 101, "100"), ("shop\nother", "control"), ("shop\u0000", "control")],
)
def test_an_account_name_that_cannot_be_shown_or_stored_is_refused(
    tmp_path: Path, name: str, says: str
) -> None:
    text = GOOD.replace("[accounts.shop]", f"[accounts.{json.dumps(name)}]")
    with pytest.raises(ConfigError, match=r"^accounts: ") as caught:
        load_settings(write(tmp_path, text))
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_account_name_of_100_characters_is_fine(tmp_path: Path) -> None:
    text = GOOD.replace("[accounts.shop]", f"[accounts.{'x' * 100}]")
    assert list(load_settings(write(tmp_path, text)).accounts) == ["x" * 100]


@pytest.mark.parametrize("mode", ["bogus", "", "REQUIRE"])
def test_an_unknown_sslmode_is_a_config_error(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path, f'database_url = "postgresql://u:pw@h/db?sslmode={mode}"\n')
    with pytest.raises(ConfigError, match=r"^database_url: .*sslmode") as caught:
        load_settings(path)
    assert "pw" not in str(caught.value)


def test_the_database_url_can_come_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "database-url"
    url.write_text("postgresql://app:f1le-secret@db/invoices?sslmode=require\n")
    from_toml = load_settings(write(tmp_path, f'database_url_file = "{url}"\n'))
    assert from_toml.database_dsn() == "postgresql://app:f1le-secret@db/invoices?sslmode=require"
    assert "f1le-secret" in from_toml.secrets()
    assert "f1le-secret" not in repr(from_toml)
    monkeypatch.setenv("INVOICE_SYNC_DATABASE_URL_FILE", str(url))
    from_env = load_settings(None)
    assert from_env.database_dsn() == from_toml.database_dsn()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read"),
        (b"postgresql://app:pw@db/x\npostgresql://other", "control character"),
        (b"mysql://app:pw@db/x", "PostgreSQL"),
        (b"postgresql://app:p\xffw@db/x", "UTF-8"),
        (b"", "empty"),
    ],
)
def test_a_database_url_file_that_is_unusable_is_one_line(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    url = tmp_path / "database-url"
    if content is not None:
        url.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^database_url_file: ") as caught:
        load_settings(write(tmp_path, f'database_url_file = "{url}"\n'))
    assert says in str(caught.value)
    assert "pw" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_database_url_and_database_url_file_together_are_refused(tmp_path: Path) -> None:
    url = tmp_path / "database-url"
    url.write_text("postgresql://app@db/x")
    text = f'database_url = "postgresql://app@db/y"\ndatabase_url_file = "{url}"\n'
    with pytest.raises(ConfigError, match="database_url_file") as caught:
        load_settings(write(tmp_path, text))
    assert "not both" in str(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "traces_url"),
    [
        ("http://otel-collector:4318", "http://otel-collector:4318/v1/traces"),
        ("https://otel.example/", "https://otel.example/v1/traces"),
        ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ("", None),
    ],
)
def test_otlp_endpoint_gives_the_traces_url(
    tmp_path: Path, endpoint: str, traces_url: str | None
) -> None:
    text = GOOD + f'[observe]\notlp_endpoint = "{endpoint}"\n'
    settings = load_settings(write(tmp_path, text), environment=False)
    assert settings.observe.otlp_traces_url() == traces_url
    assert settings.observe.service_name == "invoice-sync"


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("otel-collector:4318", "http:// or https://"),
        ("grpc://otel:4317", "http:// or https://"),
        ("http://user:hunter2-secret@otel:4318", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("http://otel:4318/?token=abc", "no query"),
        ("http://otel:99999", "http:// or https://"),
    ],
)
def test_a_bad_otlp_endpoint_is_one_line_naming_the_key(
    tmp_path: Path, endpoint: str, says: str
) -> None:
    text = GOOD + f'[observe]\notlp_endpoint = "{endpoint}"\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environment=False)
    message = str(caught.value)
    assert message.startswith("observe.otlp_endpoint: ")
    assert says in message
    assert "hunter2" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("listen", "allowed", "expected"),
    [
        ("127.0.0.1:9465", None, {"localhost", "127.0.0.1", "::1"}),
        ("[::1]:9465", None, {"localhost", "127.0.0.1", "::1"}),
        ("10.0.0.5:9465", None, {"localhost", "127.0.0.1", "::1", "10.0.0.5"}),
        ("0.0.0.0:9465", None, None),
        (
            "0.0.0.0:9465",
            ["Console.Example.COM.", "10.0.0.5:80"],
            {"console.example.com", "10.0.0.5"},
        ),
        ("127.0.0.1:9465", ["*"], None),
    ],
)
def test_console_hosts_default_to_the_listen_address(
    listen: str, allowed: list[str] | None, expected: set[str] | None
) -> None:
    console = ConsoleSettings(listen=listen, allowed_hosts=allowed)
    assert console.hosts() == (None if expected is None else frozenset(expected))


def test_every_default_duration_is_within_its_own_range() -> None:
    """Defaults are not validated when a key is left out: a range that excluded its default
    would go unnoticed until someone wrote the default down."""
    for section in (WorkerSettings, HttpSettings, ConsoleSettings):
        section.model_validate(section().model_dump())


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("lease", "0", "must be from 1s to 7d, not 0s"),
        ("lease", "99999999999999999999d", "must be from 1s to 7d, not 100000000000000000000d"),
        ("attempt_retention", "99999d", "must be from 1h to 3650d, not 99999d"),
        ("poll_interval", "1ms", "must be from 10ms to 1h, not 1ms"),
    ],
)
def test_a_duration_out_of_its_range_says_the_range(key: str, value: str, said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        WorkerSettings.model_validate({key: value})


@pytest.mark.parametrize("ttl", ["999999999999999d", "8d", "604801"])
def test_a_console_session_lasts_at_most_a_week(tmp_path: Path, ttl: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            write(tmp_path, GOOD + f'[console]\nsession_ttl = "{ttl}"\n'), environment=False
        )
    assert str(caught.value).startswith("console.session_ttl: must be from 1m to 7d, not ")
    week = load_settings(
        write(tmp_path, GOOD + '[console]\nsession_ttl = "7d"\n'), environment=False
    )
    assert week.console.session_ttl == 7 * 86400


@pytest.mark.parametrize(
    ("listen", "configured", "secure"),
    [
        ("127.0.0.1:9465", None, None),
        ("[::1]:9465", None, None),
        ("localhost:9465", None, None),
        ("0.0.0.0:9465", None, True),
        ("10.0.0.5:9465", None, True),
        ("0.0.0.0:9465", False, False),
        ("127.0.0.1:9465", True, True),
    ],
)
def test_console_cookies_are_secure_off_loopback_unless_set(
    listen: str, configured: bool | None, secure: bool | None
) -> None:
    # None: by each request's scheme (https, or a proxy's X-Forwarded-Proto: https).
    console = ConsoleSettings(listen=listen, secure_cookies=configured)
    assert console.cookies_secure() is secure
