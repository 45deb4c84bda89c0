"""One ``[accounts.NAME]`` table: the provider, where it is (``base_url``), the token's source,
and the limits; keys beyond these belong to the provider's options.

``base_url`` is checked as the place a token is sent to (``worker.config.endpoints``), and a token from
any source as a one-line secret (``worker.config.credentials``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.config.credentials import (
    UnusableSecretError,
    control_character_problem,
    secret_from_env,
    secret_from_file,
)
from worker.config.endpoints import base_url_problem
from worker.durations import RateLimit, parse_rate
from worker.errors import ConfigError

Rate = Annotated[
    RateLimit, BeforeValidator(lambda v: v if isinstance(v, RateLimit) else parse_rate(v))
]

# An account's name is a label in logs, metrics and the outbox: it must print on one line.
MAX_ACCOUNT_NAME = 100


class AccountSettings(BaseModel):
    """One provider account. Keys beyond the common ones belong to the provider's options."""

    model_config = ConfigDict(extra="allow")

    provider: str
    # Declared before base_url, whose check reads it.
    allow_insecure_http: bool = False
    """Let ``base_url`` be plain http to a host that is not loopback (logged at start)."""
    base_url: str
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: Path | None = None
    rate_limit: Rate = Field(default_factory=lambda: parse_rate("60/minute"))
    concurrency: int = Field(default=4, ge=1, le=1000)
    rate_burst: float | None = Field(default=None, ge=1)
    """Requests the deployment may send at once after a quiet spell (default: half of one
    second's worth, at least 1; see ``worker.engine.limits.default_burst``)."""

    @field_validator("base_url")
    @classmethod
    def _a_url_we_may_send_a_token_to(cls, value: str, info: ValidationInfo) -> str:
        problem = base_url_problem(
            value, allow_insecure_http=bool(info.data.get("allow_insecure_http"))
        )
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("token")
    @classmethod
    def _one_line_token(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else control_character_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

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
        try:
            if self.token_env is not None:
                return secret_from_env(self.token_env, "token_env")
            if self.token_file is not None:
                return secret_from_file(self.token_file, "token_file")
        except UnusableSecretError as exc:
            raise ConfigError(str(exc)) from exc
        return self.token


def hidden_option_secrets(account: AccountSettings) -> list[str]:
    """The option values ``AccountSettings`` hid because their key names a secret. The secrets
    a provider's options model resolves (``*_env``, ``*_file``) are read where it is validated:
    ``worker.engine.runtimes.config_secrets``."""
    return [
        value.get_secret_value()
        for key, value in account.options.items()
        if _names_secret(key) and isinstance(value, SecretStr)
    ]


def _names_secret(key: str) -> bool:
    """An option key holding a secret value (not the name of where one lives)."""
    return "secret" in key and not key.endswith(("_env", "_file"))


def account_name_problem(name: str) -> str | None:
    """What makes ``name`` unusable as an account's name, as one line; None when it is fine."""
    if not name.strip():
        return "an account name is empty"
    if len(name) > MAX_ACCOUNT_NAME:
        return f"an account name is longer than {MAX_ACCOUNT_NAME} characters ({name[:20]!r}...)"
    if control_character_problem(name) is not None:
        return f"the account name {name!r} holds a control character"
    return None
