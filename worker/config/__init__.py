"""Settings: defaults < TOML file < environment, validated once at start-up.

The TOML file comes from ``--config PATH`` or ``INVOICE_SYNC_CONFIG``; environment variables use
the ``INVOICE_SYNC_`` prefix with ``__`` for nesting (``INVOICE_SYNC_WORKER__BATCH_SIZE=50``).
Tokens come from exactly one of ``token``, ``token_env`` or ``token_file`` and are held as
``SecretStr`` so they never print; the database URL from ``database_url`` or
``database_url_file``. Any problem is a ``ConfigError`` whose message is one line naming the
key, never showing a secret.

An account's provider-specific keys are kept as they are given: this package knows no provider.
``worker.engine.runtimes.check_accounts`` validates them against the provider's options model,
for ``check-config``, ``run`` and every other command that loads a config.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
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
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from worker.config.accounts import AccountSettings, account_name_problem, hidden_option_secrets
from worker.config.console import ConsoleSettings
from worker.config.credentials import UnusableSecretError, secret_from_file
from worker.config.database_url import dsn_passwords, dsn_problem, read_dsn_file
from worker.config.listen import listen_address
from worker.durations import duration_within, parse_duration
from worker.errors import ConfigError
from worker.sealed import Keyring, decode_key

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
MS, SECOND, MINUTE, HOUR, DAY = 0.001, 1.0, 60.0, 3600.0, 86400.0
YEARS = 3650 * DAY  # ten: the most any history or retry budget is kept


def within(low: float, high: float) -> AfterValidator:
    """A duration key's range: beyond it a value breaks the worker (a lease of 0 expires at
    once, so ``run --drain`` never ends) or the database's timestamps (``now() + 10^20 d``)."""
    return AfterValidator(partial(_within, low=low, high=high))


def _within(seconds: float, *, low: float, high: float) -> float:
    return duration_within(seconds, low, high)


DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Shorter secrets are not redacted: they would blank out ordinary words in the log.
MIN_SECRET_LENGTH = 4


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerSettings(_Section):
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """The most rows one claim leases, all accounts together (``engine.limits.share_claim``)."""
    poll_interval: Annotated[Duration, within(10 * MS, HOUR)] = 5.0
    lease: Annotated[Duration, within(SECOND, 7 * DAY)] = 300.0
    shutdown_grace: Annotated[Duration, within(0, HOUR)] = 30.0
    max_attempts: int = Field(default=10, ge=1)
    base_retry_delay: Annotated[Duration, within(0, 30 * DAY)] = 2.0
    max_retry_delay: Annotated[Duration, within(0, 30 * DAY)] = 3600.0
    unknown_outcome: Literal["park", "retry"] = "park"
    flush_interval: Annotated[Duration, within(MS, MINUTE)] = 0.05
    pause_cooldown: Annotated[Duration, within(100 * MS, 7 * DAY)] = 300.0
    max_age: Annotated[Duration, within(SECOND, YEARS)] = 86400.0
    """Give up on an invoice (``exhausted``) once its first attempt is this old."""
    breaker_failures: int = Field(default=10, ge=1)
    """Consecutive failed calls (5xx, timeouts, resets) that open an account's breaker."""
    breaker_cooldown: Annotated[Duration, within(100 * MS, HOUR)] = 10.0
    """How long an opened breaker waits before one probing call; doubled after each failed
    probe, up to ``breaker_max_cooldown``. Short, so a flaky (not dead) provider costs little."""
    breaker_max_cooldown: Annotated[Duration, within(100 * MS, DAY)] = 60.0
    attempt_retention: Annotated[Duration, within(HOUR, YEARS)] = 90 * 86400.0
    """How long attempt history rows are kept (pruned hourly in bounded batches); the attempts
    of outcomes that finished a row (synced, dead_letter) are never pruned by it."""
    max_in_flight: int = Field(default=100, ge=1, le=10_000)
    """Provider calls this process makes at once, all accounts together (each account's
    ``concurrency`` still caps its own); twice as many rows may be leased ahead. It bounds the
    work in memory however many accounts have rows."""
    account_idle_timeout: Annotated[Duration, within(SECOND, 7 * DAY)] = 300.0
    """An account's runtime (adapter, HTTP session, caches) is closed once it has had nothing
    in flight this long; its next claimed row opens a new one."""
    max_open_accounts: int = Field(default=500, ge=1, le=100_000)
    """Runtimes kept open at once; beyond it the least recently used idle ones close before
    their idle timeout, so memory stays flat while thousands of accounts each have a little
    work."""


class HttpSettings(_Section):
    connect_timeout: Annotated[Duration, within(100 * MS, 10 * MINUTE)] = 5.0
    request_timeout: Annotated[Duration, within(100 * MS, HOUR)] = 30.0
    """Seconds for a whole provider call, its answer's body included (a dripping body too)."""
    max_response_size: ByteSize = Field(default=ByteSize(1024 * 1024), ge=1024)
    """The most of one answer read (bytes after decompression, or "1MiB"); a larger answer
    fails like a timeout after sending: the outcome is unknown."""


class ObserveSettings(_Section):
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    listen: str = "127.0.0.1:9464"
    """Where /metrics, /healthz and /readyz are served: HOST:PORT (port 0: any free one) or off."""
    otlp_endpoint: str | None = None
    """An OpenTelemetry collector's OTLP/HTTP address (``http://collector:4318``): each attempt
    becomes a span, exported there. Unset: no spans, nothing exported. Needs the ``otel``
    extra."""
    service_name: str = Field(default="invoice-sync", min_length=1, max_length=200)
    """The ``service.name`` the spans are exported under."""
    metrics_accounts: int = Field(default=100, ge=0, le=100_000)
    """Accounts given their own metric series, in the order they first show activity; later
    ones share ``account="_other"``. Series cost Prometheus memory per account whatever the
    account does; ``status`` has every account's counts."""

    @field_validator("listen")
    @classmethod
    def _listen_is_an_address(cls, value: str) -> str:
        listen_address(value)
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_endpoint_is_a_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        problem = otlp_endpoint_problem(value.strip())
        if problem is not None:
            raise ValueError(problem)
        return value.strip()

    def listen_on(self) -> tuple[str, int] | None:
        return listen_address(self.listen)

    def otlp_traces_url(self) -> str | None:
        """Where spans are sent: the endpoint's ``/v1/traces``, as the OTLP/HTTP specification
        puts it, unless the endpoint names that path already; None when tracing is off."""
        if self.otlp_endpoint is None:
            return None
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def otlp_endpoint_problem(value: str) -> str | None:
    """Why ``value`` is not an OTLP/HTTP endpoint we send spans to (None when it is one). No
    user or password in it: the URL is logged at start; a collector's credentials go in
    ``OTEL_EXPORTER_OTLP_HEADERS``, which the exporter reads itself."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "expected an http:// or https:// URL"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "expected an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return (
            "a user or password in the URL is refused (it would be logged); give the "
            "collector's credentials in OTEL_EXPORTER_OTLP_HEADERS"
        )
    if parts.query or parts.fragment:
        return "no query or fragment"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INVOICE_SYNC_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: SecretStr | None = None
    database_url_file: Path | None = None
    """A file holding the database URL (a Kubernetes secret volume, systemd credentials)."""
    worker: WorkerSettings = WorkerSettings()
    http: HttpSettings = HttpSettings()
    observe: ObserveSettings = ObserveSettings()
    console: ConsoleSettings = ConsoleSettings()
    accounts: dict[str, AccountSettings] = {}
    secret_key: SecretStr | None = None
    """The key sealing database-held accounts' secrets (env ``INVOICE_SYNC_SECRET_KEY``):
    32 random bytes, base64, from ``invoice-sync accounts new-key``."""
    secret_key_file: Path | None = None
    """A file holding ``secret_key`` (a Kubernetes secret volume, systemd credentials)."""
    previous_secret_keys: list[SecretStr] = []
    """Keys still accepted to decrypt, never to encrypt: during ``accounts rotate-key``."""

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so that a typo is a config error at start-up (exit 2, naming the key),
        # not a connection failure later; the message never repeats the URL (it may hold a
        # password).
        if value is not None:
            problem = dsn_problem(value.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("database_url_file")
    @classmethod
    def _readable_url_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_dsn_file(value)
        return value

    @field_validator("accounts")
    @classmethod
    def _printable_account_names(
        cls, value: dict[str, AccountSettings]
    ) -> dict[str, AccountSettings]:
        for name in value:
            problem = account_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _database_url_from_file(self) -> Settings:
        if self.database_url_file is None:
            return self
        if self.database_url is not None:
            raise ValueError("give one of database_url, database_url_file, not both")
        self.database_url = read_dsn_file(self.database_url_file)
        return self

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
            raise ConfigError(
                "database_url: not set (config file, INVOICE_SYNC_DATABASE_URL or "
                "INVOICE_SYNC_DATABASE_URL_FILE)"
            )
        return self.database_url.get_secret_value()

    def keyring(self) -> Keyring:
        """The secret keys: the current one (``secret_key`` or ``secret_key_file``, or none)
        and the previous ones; ``ConfigError`` naming the key that is unusable."""
        if self.secret_key is not None and self.secret_key_file is not None:
            raise ConfigError("give one of secret_key, secret_key_file, not both")
        current = None
        if self.secret_key is not None:
            current = decode_key(self.secret_key.get_secret_value(), "secret_key")
        elif self.secret_key_file is not None:
            try:
                text = secret_from_file(self.secret_key_file, "secret_key_file")
            except UnusableSecretError as exc:
                raise ConfigError(str(exc)) from exc
            current = decode_key(text.get_secret_value(), "secret_key_file")
        previous = [
            decode_key(key.get_secret_value(), f"previous_secret_keys[{i}]")
            for i, key in enumerate(self.previous_secret_keys)
        ]
        return Keyring(current, previous)

    def secrets(self) -> list[str]:
        """The secret values this config holds itself, for log redaction: the database
        password, tokens, options under keys naming a secret. Those a provider's options resolve
        from elsewhere (``*_env``, ``*_file``) come from ``worker.engine.runtimes.config_secrets``."""
        found: list[str] = []
        if self.database_url is not None:
            found.extend(dsn_passwords(self.database_url.get_secret_value()))
        keys = [self.secret_key, *self.previous_secret_keys]
        found.extend(key.get_secret_value() for key in keys if key is not None)
        for account in self.accounts.values():
            try:
                token = account.resolve_token()
            except ConfigError:
                token = None
            if token is not None:
                found.append(token.get_secret_value())
            found.extend(hidden_option_secrets(account))
        try:
            admin_token = self.console.admin_token()
        except ConfigError:
            admin_token = None
        if admin_token is not None:
            found.append(admin_token.get_secret_value())
        return [s for s in found if len(s) >= MIN_SECRET_LENGTH]


def config_path(explicit: str | None) -> Path | None:
    chosen = explicit or os.environ.get("INVOICE_SYNC_CONFIG")
    return Path(chosen) if chosen else None


def load_settings(path: Path | None, *, environment: bool = True) -> Settings:
    """Read and validate the configuration; raise ``ConfigError`` with one readable line.
    ``environment=False`` reads the file alone, without ``INVOICE_SYNC_`` overrides. An
    account's provider options are left to ``worker.engine.runtimes.check_accounts``."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(path)
    try:
        settings = (Settings if environment else _FileOnlySettings)(**data)
    except ValidationError as exc:
        raise ConfigError(describe_config_error(exc)) from exc
    except SettingsError as exc:
        raise ConfigError(_describe_settings_error(exc)) from exc
    return settings


class _FileOnlySettings(Settings):
    """Settings from the values given alone (a file another program wrote, e.g. the demo's)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc


def _describe_settings_error(exc: SettingsError) -> str:
    """pydantic-settings could not decode a nested override (``INVOICE_SYNC_ACCOUNTS='{bad'``):
    name the variable, never its value (it may hold a token)."""
    match = re.search(r'field "(\w+)"', str(exc))
    prefix = f"INVOICE_SYNC_{match.group(1).upper()}" if match else "INVOICE_SYNC_"
    for variable, value in sorted(os.environ.items()):
        if variable.upper().startswith(prefix) and _broken_json(value):
            prefix = variable
            break
    return f"{prefix}: not valid JSON (a section given whole must be a JSON object)"


def _broken_json(text: str) -> bool:
    """Meant as JSON (pydantic-settings decodes a value that opens an object or a list) but
    not valid JSON."""
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def describe_config_error(exc: ValidationError, prefix: str = "") -> str:
    """The first problem as one line: ``worker.batch_size: Input should be ...``."""
    first = exc.errors(include_url=False, include_input=False)[0]
    parts = [prefix] if prefix else []
    parts.extend(str(p) for p in first["loc"])
    where = ".".join(parts) or "config"
    message = first["msg"].removeprefix("Value error, ")
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{extra}"
