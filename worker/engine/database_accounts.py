"""Accounts held in the database, turned into settings the engine runs like ``[accounts.NAME]``.

``load_accounts(rows, keyring)`` opens each row's sealed secret and checks the row as an
``AccountSettings`` and against its provider's options model. A secret no key opens stops the
start-up (``SealError``, one line naming the account: the key is missing or wrong, which every
account suffers alike); a row with bad settings (written by hand) is left out with an
``account.invalid`` log line and counted in ``invoice_sync_accounts_invalid``, so the others
run. ``merge_accounts`` adds the loaded accounts to the config's; a name in both is an error.

Reloading (a replica following the table while it runs, ``worker.engine.account_reload``) calls
``load_accounts`` with ``skip_unopenable``: a running replica does not stop for one bad row, so a
secret no key opens leaves that account out, as an invalid row does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from worker.config import MIN_SECRET_LENGTH, Settings, describe_config_error
from worker.config.accounts import AccountSettings, account_name_problem
from worker.engine.runtimes import check_account
from worker.errors import ConfigError
from worker.logs import REDACTOR
from worker.sealed import Keyring, SealError
from worker.store.account_rows import AccountRow, account_rows

log = structlog.get_logger(__name__)

# What a sealed secret may hold: a provider token, or Refrens' app secret.
SECRET_FIELDS = ("token", "app_secret")
# Keys ``options`` may not hold: the columns of their own, the secrets (sealed, never in jsonb)
# and sources on a replica's disk or in its environment (a database row must not point there).
_COLUMN_KEYS = frozenset({"provider", "rate_limit", "concurrency"})


def options_problem(options: Mapping[str, Any]) -> str | None:
    """What makes ``options`` unfit for the table's ``options`` column, as one line; or None."""
    for key in options:
        if key in _COLUMN_KEYS:
            return f"{key} is set by its own flag, not in options"
        if "secret" in key or key.startswith("token") or key.endswith(("_env", "_file")):
            return (
                f"{key} does not belong in options: give secrets as --secret-file or --secret-stdin"
            )
    return None


def account_settings(row: AccountRow, secrets: Mapping[str, str]) -> AccountSettings:
    """``row`` with its opened ``secrets`` as an ``AccountSettings``, checked against its
    provider's options model; ``ConfigError`` saying what is wrong (never a secret)."""
    problem = account_name_problem(row.name) or options_problem(row.options)
    unknown = sorted(set(secrets) - set(SECRET_FIELDS))
    if problem is None and unknown:
        problem = f"its secret holds {', '.join(unknown)}, expected {' or '.join(SECRET_FIELDS)}"
    if problem is not None:
        raise ConfigError(f"account {row.name}: {problem}")
    values = {
        **row.options,
        **secrets,
        "provider": row.provider,
        "rate_limit": row.rate_limit,
        "concurrency": row.concurrency,
    }
    try:
        account = AccountSettings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe_config_error(exc, prefix=f"account {row.name}")) from exc
    check_account(row.name, account)
    return account


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedAccounts:
    """The database's accounts: those to run, those left out (disabled, or invalid and why)."""

    accounts: dict[str, AccountSettings] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    invalid: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    """The opened secret values, for log redaction."""


def load_accounts(
    rows: Iterable[AccountRow],
    keyring: Keyring,
    *,
    skip_unopenable: bool = False,
    reported: Mapping[str, str] | None = None,
) -> LoadedAccounts:
    """Every enabled row opened and checked; ``SealError`` for a secret no key opens (with
    ``skip_unopenable``: that account is left out as invalid instead). An invalid row is logged
    unless ``reported`` (a reload's previous ``invalid``) already holds it with the same error:
    a bad row left alone is named once, not at every reload."""
    accounts: dict[str, AccountSettings] = {}
    invalid: dict[str, str] = {}
    disabled: set[str] = set()
    secrets: list[str] = []

    def left_out(name: str, error: str) -> None:
        invalid[name] = error
        if (reported or {}).get(name) != error:
            log.warning("account.invalid", account=name, error=error)

    for row in rows:
        if not row.enabled:
            disabled.add(row.name)
            continue
        try:
            opened = {} if row.secret is None else keyring.open(row.name, row.secret)
        except SealError as exc:
            if not skip_unopenable:
                raise
            left_out(row.name, str(exc))
            continue
        secrets.extend(v for v in opened.values() if len(v) >= MIN_SECRET_LENGTH)
        try:
            accounts[row.name] = account_settings(row, opened)
        except ConfigError as exc:
            left_out(row.name, str(exc))
    return LoadedAccounts(
        accounts=accounts, disabled=frozenset(disabled), invalid=invalid, secrets=secrets
    )


def merge_accounts(settings: Settings, loaded: LoadedAccounts) -> Settings:
    """``settings`` with the database's accounts beside the config's; ``ConfigError`` naming an
    account defined in both places (disabled or invalid rows count: the name is taken)."""
    names = set(loaded.accounts) | loaded.disabled | set(loaded.invalid)
    both = sorted(names & set(settings.accounts))
    if both:
        raise ConfigError(
            f"accounts.{both[0]}: defined both in the config and in the database "
            "(invoice_sync.account); keep one"
        )
    return settings.model_copy(update={"accounts": {**settings.accounts, **loaded.accounts}})


async def with_database_accounts(
    settings: Settings, source: Any
) -> tuple[Settings, LoadedAccounts]:
    """``settings`` merged with the accounts read from ``source`` (a pool or a connection), their
    secrets added to the log redactor; ``ConfigError``/``SealError`` as above."""
    loaded = load_accounts(await account_rows(source), settings.keyring())
    REDACTOR.add(loaded.secrets)
    return merge_accounts(settings, loaded), loaded
