"""Refrens' keys in ``[accounts.NAME]``: the business's ``url_key``, and how to authenticate.

An account gives a static bearer token (the common ``token``/``token_env``/``token_file``) or
app-secret login (``app_id`` with ``app_secret``/``app_secret_env``/``app_secret_file``), never
both and never neither (``check_credentials``, the rule ``ProviderSpec.needs_token`` cannot
state). An app secret read from the environment or a file is resolved while validating, so the
validated options hold it as a ``SecretStr``, which is how the config finds it for log redaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from worker.config.credentials import checked_secret, secret_from_env, secret_from_file


class RefrensOptions(BaseModel):
    """Refrens' keys in ``[accounts.NAME]``: the business, and optionally app-secret login."""

    model_config = ConfigDict(extra="forbid")

    url_key: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
    """The business's ``urlKey``, given by Refrens."""
    app_id: str | None = Field(default=None, min_length=1)
    app_secret: SecretStr | None = None
    app_secret_env: str | None = None
    app_secret_file: Path | None = None
    lookup_page_size: int = Field(default=50, ge=1, le=500)
    """Invoices per page when looking for an invoice after an unknown outcome."""
    lookup_pages: int = Field(default=10, ge=1, le=1000)
    """Newest pages read before giving up on finding it."""

    @model_validator(mode="after")
    def _app_secret_login(self) -> RefrensOptions:
        given = [
            key
            for key in ("app_secret", "app_secret_env", "app_secret_file")
            if getattr(self, key) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(given[:-1])} or {given[-1]}, not both")
        if given and self.app_id is None:
            raise ValueError(f"{given[0]} needs app_id")
        if self.app_id is not None and not given:
            raise ValueError("app_id needs app_secret (or app_secret_env, app_secret_file)")
        if self.app_secret is None and given:
            self.app_secret = _read_secret(self.app_secret_env, self.app_secret_file)
        elif self.app_secret is not None:
            self.app_secret = checked_secret(self.app_secret.get_secret_value(), "app_secret")
        return self

    @property
    def logs_in(self) -> bool:
        return self.app_id is not None


def _read_secret(env: str | None, file: Path | None) -> SecretStr:
    # UnusableSecretError is a ValueError: pydantic reports it under the account's key.
    if env is not None:
        return secret_from_env(env, "app_secret_env")
    assert file is not None
    return secret_from_file(file, "app_secret_file")


def check_credentials(options: Any, has_token: bool) -> str | None:
    """A static token or app-secret login, exactly one of them."""
    logs_in = isinstance(options, RefrensOptions) and options.logs_in
    if has_token and logs_in:
        return "give a token (token, token_env, token_file) or app_id with app_secret, not both"
    if not has_token and not logs_in:
        return (
            "give one of token, token_env, token_file, or app_id with app_secret "
            "(or app_secret_env, app_secret_file)"
        )
    return None
