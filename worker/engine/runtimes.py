"""Builds each configured account's runtime: its provider adapter and its limits."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from worker.config import Settings
from worker.config.accounts import AccountSettings
from worker.config.endpoints import insecure_host
from worker.engine.limits import AccountGate, Breaker, BreakerPolicy
from worker.errors import ConfigError, ProviderError
from worker.providers.base import Credentials, HttpTimeouts, Provider
from worker.providers.registry import PROVIDERS

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountRuntime:
    name: str
    provider_name: str
    provider: Provider
    gate: AccountGate
    request_timeout: float
    """``[http] request_timeout``: how long a call may still run once sent."""


def build_runtimes(settings: Settings) -> dict[str, AccountRuntime]:
    """One runtime per ``[accounts.NAME]``; ``ConfigError`` if a provider cannot be built."""
    timeouts = HttpTimeouts(
        connect=settings.http.connect_timeout,
        total=settings.http.request_timeout,
        max_response_size=settings.http.max_response_size,
    )
    policy = BreakerPolicy(
        failures=settings.worker.breaker_failures,
        cooldown=settings.worker.breaker_cooldown,
        max_cooldown=settings.worker.breaker_max_cooldown,
    )
    return {
        name: _build(name, account, timeouts, policy) for name, account in settings.accounts.items()
    }


def _build(
    name: str, account: AccountSettings, timeouts: HttpTimeouts, policy: BreakerPolicy
) -> AccountRuntime:
    spec = PROVIDERS.get(account.provider)
    if spec is None:
        raise ConfigError(f"accounts.{name}.provider: unknown provider {account.provider!r}")
    try:
        token = account.resolve_token()
    except ConfigError as exc:
        raise ConfigError(f"accounts.{name}.{exc}") from exc
    credentials = Credentials(
        base_url=account.base_url.rstrip("/"),
        token=None if token is None else token.get_secret_value(),
    )
    options = spec.options.model_validate(account.options)
    host = insecure_host(account.base_url)
    if host is not None:  # allowed by the account's allow_insecure_http, said once at start
        log.warning("account.insecure_http", account=name, host=host)
    try:
        provider = spec.factory(credentials, options, timeouts)
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
            breaker=Breaker(policy, time.monotonic),
        ),
        request_timeout=timeouts.total,
    )
