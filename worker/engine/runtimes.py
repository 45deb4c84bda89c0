"""Builds each configured account's runtime: its provider adapter and its limits.

This is the one place a provider's account options are validated (``check_accounts``):
``check-config`` and ``run`` build runtimes through it, and ``config_secrets`` reads the
options' secrets (for log redaction) from it. ``worker.config`` knows no provider.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from worker.config import MIN_SECRET_LENGTH, Settings, describe_config_error
from worker.config.accounts import AccountSettings
from worker.config.endpoints import insecure_host
from worker.engine.limits import AccountGate, Breaker, BreakerPolicy
from worker.errors import ConfigError, ProviderError
from worker.providers.base import Credentials, HttpTimeouts, Provider, ProviderSpec
from worker.providers.connections import ConnectionPool
from worker.providers.registry import PROVIDERS

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckedAccount:
    """An ``[accounts.NAME]`` table whose provider exists and accepts its options."""

    settings: AccountSettings
    spec: ProviderSpec
    options: BaseModel
    """The provider's options model, validated (``*_env``/``*_file`` sources resolved)."""


def check_accounts(settings: Settings) -> dict[str, CheckedAccount]:
    """Each account's provider and options, checked; ``ConfigError`` naming the key if not."""
    return {name: check_account(name, account) for name, account in settings.accounts.items()}


def check_account(name: str, account: AccountSettings) -> CheckedAccount:
    """One account's provider and options, checked; ``ConfigError`` naming the key if not."""
    spec = PROVIDERS.get(account.provider)
    if spec is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"accounts.{name}.provider: {account.provider!r} is not one of {known}")
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
    return CheckedAccount(settings=account, spec=spec, options=options)


def config_secrets(settings: Settings) -> list[str]:
    """Every secret value in this config, for log redaction: ``Settings.secrets()`` (the
    database password, tokens) and each provider options model's ``SecretStr`` values (e.g.
    Refrens ``app_secret``, from wherever ``app_secret_env``/``_file`` point);
    ``ConfigError`` as ``check_accounts``."""
    found = settings.secrets()
    for account in check_accounts(settings).values():
        found.extend(
            value.get_secret_value()
            for value in vars(account.options).values()
            if isinstance(value, SecretStr)
        )
    return [s for s in found if len(s) >= MIN_SECRET_LENGTH]


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountRuntime:
    name: str
    provider_name: str
    provider: Provider
    gate: AccountGate
    request_timeout: float
    """``[http] request_timeout``: how long a call may still run once sent."""


class RuntimeFactory:
    """Builds one account's runtime from its checked settings: cheap (an adapter opens its HTTP
    session on first use), so ``check-config`` can build them all and ``run`` builds each only
    when the account has work (``worker.engine.fleet``).

    The runtimes one factory builds share one ``ConnectionPool``: an account that opens, sends
    one invoice and retires reuses the connection the previous account left to the same host,
    rather than opening its own (``worker.providers.connections`` says why that is safe)."""

    def __init__(self, settings: Settings) -> None:
        self._timeouts = HttpTimeouts(
            connect=settings.http.connect_timeout,
            total=settings.http.request_timeout,
            max_response_size=settings.http.max_response_size,
            pool=ConnectionPool(),
        )
        self._policy = BreakerPolicy(
            failures=settings.worker.breaker_failures,
            cooldown=settings.worker.breaker_cooldown,
            max_cooldown=settings.worker.breaker_max_cooldown,
        )

    def build(self, name: str, checked: CheckedAccount) -> AccountRuntime:
        """``ConfigError`` naming the account if its token or provider cannot be had."""
        account, spec = checked.settings, checked.spec
        try:
            token = account.resolve_token()
        except ConfigError as exc:
            raise ConfigError(f"accounts.{name}.{exc}") from exc
        credentials = Credentials(
            base_url=account.base_url.rstrip("/"),
            token=None if token is None else token.get_secret_value(),
        )
        try:
            provider = spec.factory(credentials, checked.options, self._timeouts)
        except ProviderError as exc:  # an adapter that cannot work with this account's settings
            raise ConfigError(f"accounts.{name}: {exc}") from exc
        return AccountRuntime(
            name=name,
            provider_name=spec.name,
            provider=provider,
            gate=AccountGate(
                rate=account.rate_limit,
                concurrency=account.concurrency,
                burst=account.rate_burst,
                breaker=Breaker(self._policy, time.monotonic),
            ),
            request_timeout=self._timeouts.total,
        )


def warn_insecure(accounts: dict[str, CheckedAccount]) -> None:
    """Say once, at start, which accounts send to plain http (their ``allow_insecure_http``)."""
    for name, checked in accounts.items():
        host = insecure_host(checked.settings.base_url)
        if host is not None:
            log.warning("account.insecure_http", account=name, host=host)


def build_runtimes(settings: Settings) -> dict[str, AccountRuntime]:
    """One runtime per ``[accounts.NAME]`` (``check-config`` shows them); ``ConfigError`` if
    an account's options do not check out (``check_accounts``) or its provider cannot be
    built."""
    checked = check_accounts(settings)
    warn_insecure(checked)
    factory = RuntimeFactory(settings)
    return {name: factory.build(name, account) for name, account in checked.items()}
