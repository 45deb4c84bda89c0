"""Settings: defaults < TOML file < environment, validated once at start-up.

The TOML file comes from ``--config PATH`` or ``INVOICE_SYNC_CONFIG``; environment variables use
the ``INVOICE_SYNC_`` prefix with ``__`` for nesting (``INVOICE_SYNC_WORKER__BATCH_SIZE=50``).
Tokens come from exactly one of ``token``, ``token_env`` or ``token_file`` and are held as
``SecretStr`` so they never print. Any problem is a ``ConfigError`` whose message is one line
naming the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from worker.durations import RateLimit, parse_duration, parse_rate
from worker.errors import ConfigError

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Rate = Annotated[
    RateLimit, BeforeValidator(lambda v: v if isinstance(v, RateLimit) else parse_rate(v))
]

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerSettings(_Section):
    batch_size: int = Field(default=100, ge=1, le=10_000)
    poll_interval: Duration = 5.0
    lease: Duration = 300.0
    shutdown_grace: Duration = 30.0
    max_attempts: int = Field(default=10, ge=1)
    base_retry_delay: Duration = 2.0
    max_retry_delay: Duration = 3600.0
    unknown_outcome: Literal["park", "retry"] = "park"
    flush_interval: Duration = 0.05
    pause_cooldown: Duration = 300.0
    max_age: Duration = 86400.0
    """Give up on an invoice (``exhausted``) once its first attempt is this old."""
    breaker_failures: int = Field(default=10, ge=1)
    """Consecutive failed calls (5xx, timeouts, resets) that open an account's breaker."""
    breaker_cooldown: Duration = 10.0
    """How long an opened breaker waits before one probing call; doubled after each failed
    probe, up to ``breaker_max_cooldown``. Short, so a flaky (not dead) provider costs little."""
    breaker_max_cooldown: Duration = 60.0


class HttpSettings(_Section):
    connect_timeout: Duration = 5.0
    request_timeout: Duration = 30.0
    """Seconds for a whole provider call, its answer's body included (a dripping body too)."""
    max_response_size: ByteSize = Field(default=ByteSize(1024 * 1024), ge=1024)
    """The most of one answer read (bytes after decompression, or "1MiB"); a larger answer
    fails like a timeout after sending: the outcome is unknown."""


class ObserveSettings(_Section):
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    listen: str = "127.0.0.1:9464"
    """Where /metrics, /healthz and /readyz are served: HOST:PORT (port 0: any free one) or off."""

    @field_validator("listen")
    @classmethod
    def _listen_is_an_address(cls, value: str) -> str:
        listen_address(value)
        return value

    def listen_on(self) -> tuple[str, int] | None:
        return listen_address(self.listen)


def listen_address(value: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"``, ``"0.0.0.0:0"``; None for ``off``."""
    if value.strip().lower() in {"off", "none", ""}:
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT or off, got {value!r}")
    return host.strip("[]"), int(port)


class AccountSettings(BaseModel):
    """One provider account. Keys beyond the common ones belong to the provider's options."""

    model_config = ConfigDict(extra="allow")

    provider: str
    base_url: str
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: Path | None = None
    rate_limit: Rate = Field(default_factory=lambda: parse_rate("60/minute"))
    concurrency: int = Field(default=4, ge=1, le=1000)
    rate_burst: float | None = Field(default=None, ge=1)
    """Requests the deployment may send at once after a quiet spell (default: half of one
    second's worth, at least 1; see ``worker.limits.default_burst``)."""

    @model_validator(mode="after")
    def _at_most_one_token_source(self) -> AccountSettings:
        given = [k for k in ("token", "token_env", "token_file") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of token, token_env, token_file, not {' and '.join(given)}")
        return self

    @model_validator(mode="after")
    def _hide_option_secrets(self) -> AccountSettings:
        # Provider options naming a secret (Refrens app_secret) must not print, as tokens don't.
        extra = self.model_extra or {}
        for key, value in extra.items():
            if _names_secret(key) and isinstance(value, str):
                extra[key] = SecretStr(value)
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def resolve_token(self) -> SecretStr | None:
        """The token from wherever the config says it lives; ``ConfigError`` if it is not there."""
        if self.token is not None:
            return self.token
        if self.token_env is not None:
            value = os.environ.get(self.token_env)
            if not value:
                raise ConfigError(f"token_env: environment variable {self.token_env} is not set")
            return SecretStr(value.strip())
        if self.token_file is not None:
            try:
                return SecretStr(self.token_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(
                    f"token_file: cannot read {self.token_file}: {exc.strerror}"
                ) from exc
        return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INVOICE_SYNC_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: SecretStr | None = None
    worker: WorkerSettings = WorkerSettings()
    http: HttpSettings = HttpSettings()
    observe: ObserveSettings = ObserveSettings()
    accounts: dict[str, AccountSettings] = {}

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so that a typo is a config error at start-up (exit 2, naming the key),
        # not a connection failure later; the message never repeats the URL (it may hold a
        # password).
        if value is not None:
            problem = _dsn_problem(value.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is passed as init values; the environment must win over it.
        return (env_settings, init_settings)

    def database_dsn(self) -> str:
        if self.database_url is None:
            raise ConfigError("database_url: not set (config file or INVOICE_SYNC_DATABASE_URL)")
        return self.database_url.get_secret_value()

    def secrets(self) -> list[str]:
        """Every secret value in this config, for log redaction."""
        found: list[str] = []
        if self.database_url is not None:
            found.extend(_dsn_password(self.database_url.get_secret_value()))
        for account in self.accounts.values():
            try:
                token = account.resolve_token()
            except ConfigError:
                token = None
            if token is not None:
                found.append(token.get_secret_value())
            found.extend(_option_secrets(account))
        return [s for s in found if len(s) >= 4]


def _option_secrets(account: AccountSettings) -> list[str]:
    """Secrets among a provider's account options: every ``SecretStr`` of the validated options
    model (which resolves ``*_env``/``*_file`` sources, e.g. Refrens ``app_secret``); for options
    that do not validate, the values ``AccountSettings`` hid under keys naming a secret."""
    from worker.providers import PROVIDERS  # noqa: PLC0415 -- see _check_accounts

    spec = PROVIDERS.get(account.provider)
    try:
        options = None if spec is None else spec.options.model_validate(account.options)
    except ValueError:  # pydantic's ValidationError included
        options = None
    if options is None:
        return [
            value.get_secret_value()
            for key, value in account.options.items()
            if _names_secret(key) and isinstance(value, SecretStr)
        ]
    return [
        value.get_secret_value() for value in vars(options).values() if isinstance(value, SecretStr)
    ]


def _names_secret(key: str) -> bool:
    """An option key holding a secret value (not the name of where one lives)."""
    return "secret" in key and not key.endswith(("_env", "_file"))


def _dsn_problem(dsn: str) -> str | None:
    expected = "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    try:
        parts = urlsplit(dsn.strip())
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return f"not a valid URL ({expected})"
    if parts.scheme not in ("postgresql", "postgres"):
        return f"not a PostgreSQL URL ({expected})"
    return None


def _dsn_password(dsn: str) -> list[str]:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return []
    return [password] if password else []


def config_path(explicit: str | None) -> Path | None:
    chosen = explicit or os.environ.get("INVOICE_SYNC_CONFIG")
    return Path(chosen) if chosen else None


def load_settings(path: Path | None) -> Settings:
    """Read and validate the configuration; raise ``ConfigError`` with one readable line."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_config_error(exc)) from exc
    _check_accounts(settings)
    return settings


def _check_accounts(settings: Settings) -> None:
    # Imported here: the providers' modules are heavier than config and need none of it.
    from worker.providers import PROVIDERS  # noqa: PLC0415

    for name, account in settings.accounts.items():
        spec = PROVIDERS.get(account.provider)
        if spec is None:
            known = ", ".join(sorted(PROVIDERS))
            raise ConfigError(
                f"accounts.{name}.provider: {account.provider!r} is not one of {known}"
            )
        try:
            options = spec.options.model_validate(account.options)
        except ValidationError as exc:
            raise ConfigError(describe_config_error(exc, prefix=f"accounts.{name}")) from exc
        has_token = any(
            value is not None for value in (account.token, account.token_env, account.token_file)
        )
        if spec.check_credentials is not None:
            problem = spec.check_credentials(options, has_token)
        elif spec.needs_token and not has_token:
            problem = "give one of token, token_env, token_file"
        else:
            problem = None
        if problem is not None:
            raise ConfigError(f"accounts.{name}: {problem}")


def describe_config_error(exc: ValidationError, prefix: str = "") -> str:
    """The first problem as one line: ``worker.batch_size: Input should be ...``."""
    first = exc.errors(include_url=False, include_input=False)[0]
    parts = [prefix] if prefix else []
    parts.extend(str(p) for p in first["loc"])
    where = ".".join(parts) or "config"
    message = first["msg"].removeprefix("Value error, ")
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{extra}"
