"""Refrens accounts in the config: url_key, a token or app-secret login, secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import Settings, load_settings
from worker.engine.runtimes import check_accounts, config_secrets
from worker.errors import ConfigError
from worker.providers.refrens.adapter import RefrensOptions

BASE = """
[accounts.books]
provider = "refrens"
base_url = "https://api.refrens.com"
url_key = "acme-traders"
"""


def load(tmp_path: Path, extra: str) -> Settings:
    """The config as a command loads it: its Refrens options checked by the provider."""
    path = tmp_path / "c.toml"
    path.write_text(BASE + extra)
    settings = load_settings(path)
    check_accounts(settings)
    return settings


def test_static_token(tmp_path: Path) -> None:
    settings = load(tmp_path, 'token = "jwt-static-123"\n')
    assert "jwt-static-123" in config_secrets(settings)


def test_app_secret_login_and_its_secret_is_redacted(tmp_path: Path) -> None:
    settings = load(tmp_path, 'app_id = "acme-app"\napp_secret = "s3cret-app-value"\n')
    assert "s3cret-app-value" in config_secrets(settings)
    assert "acme-app" not in config_secrets(settings)
    assert "s3cret-app-value" not in repr(settings)


def test_app_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFRENS_SECRET", "env-app-secret")
    settings = load(tmp_path, 'app_id = "a"\napp_secret_env = "REFRENS_SECRET"\n')
    secrets = config_secrets(settings)
    assert "env-app-secret" in secrets
    assert "REFRENS_SECRET" not in secrets
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-app-secret\n")
    options = RefrensOptions.model_validate(
        {"url_key": "k", "app_id": "a", "app_secret_file": str(secret_file)}
    )
    assert options.app_secret is not None
    assert options.app_secret.get_secret_value() == "file-app-secret"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", "accounts.books: give one of token, token_env, token_file, or app_id with app_secret"),
        (
            'token = "t-1234"\napp_id = "a"\napp_secret = "s"\n',
            "accounts.books: give a token (token, token_env, token_file) or app_id with "
            "app_secret, not both",
        ),
        ('app_id = "a"\n', "accounts.books: app_id needs app_secret"),
        ('app_secret = "s"\n', "accounts.books: app_secret needs app_id"),
        (
            'app_id = "a"\napp_secret = "s"\napp_secret_env = "E"\n',
            "accounts.books: give one of app_secret or app_secret_env, not both",
        ),
        (
            'app_id = "a"\napp_secret_env = "NO_SUCH_VARIABLE_HERE"\n',
            "accounts.books: app_secret_env: environment variable NO_SUCH_VARIABLE_HERE is not set",
        ),
        ('token = "t-1234"\nurl_kye = "x"\n', "accounts.books.url_kye: Extra inputs"),
    ],
)
def test_credential_mistakes_are_one_line(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_url_key_is_required_and_path_safe(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE.replace('url_key = "acme-traders"\n', 'token = "t-1234"\n'))
    with pytest.raises(ConfigError, match=r"accounts\.books\.url_key: Field required"):
        check_accounts(load_settings(path))
    path.write_text(BASE.replace("acme-traders", "../admin") + 'token = "t-1234"\n')
    with pytest.raises(ConfigError, match=r"accounts\.books\.url_key"):
        check_accounts(load_settings(path))
