"""Accounts held in the database, turned into settings the engine runs like ``[accounts.NAME]``.

``load_accounts(rows, keyring)`` opens each row's sealed secret and checks the row as an
``AccountSettings`` and against its provider's options model. A secret no key opens stops the
start-up (``SealError``, one line naming the account: the key is missing or wrong, which every
account suffers alike); a row with bad settings (written by hand) is left out with an
``account.invalid`` log line and counted in ``invoice_sync_accounts_invalid``, so the others
run. ``merge_accounts`` adds the loaded accounts to the config's; a name in both is an error.

``load_accounts`` checks every row at once, which ``check-config`` wants. The daemon does not,
nor does it read every row in any other way: a platform's hundred thousand merchants would cost
it seconds and megabytes at start (and at each reload), for accounts that mostly have nothing
to send. At start it opens one secret per key id (``check_keys``: a missing or wrong key stops
the start-up as above) and looks for the config file's names in the table
(``check_config_names``, one query on those names); it reads, opens and checks an account only
when a claim's walk first names it among the accounts with due rows (``DatabaseLoader``, the
fleet's loader, one query per claim for its new names). A row found unusable then is left out
as an invalid one is, until it changes (``worker.engine.fleet``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from worker.config import MIN_SECRET_LENGTH, Settings, describe_config_error
from worker.config.accounts import AccountSettings, account_name_problem
from worker.engine.fleet import Loaded
from worker.engine.runtimes import CheckedAccount, check_account, warn_insecure
from worker.errors import ConfigError
from worker.logs import REDACTOR
from worker.sealed import Keyring, SealError
from worker.store.account_rows import (
    AccountRow,
    ReadAccounts,
    account_key_samples,
    account_rows,
    account_rows_named,
    account_versions,
)
from worker.store.database import Pool

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
    return checked_account(row, secrets).settings


def checked_account(row: AccountRow, secrets: Mapping[str, str]) -> CheckedAccount:
    """As ``account_settings``, with the provider's options model it was checked against."""
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
    return check_account(row.name, account)


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


def in_both_places(name: str, what_then: str) -> str:
    """The one line for an account named both in the config file and in the table."""
    return (
        f"accounts.{name}: defined both in the config and in the database "
        f"(invoice_sync.account); {what_then}"
    )


def merge_accounts(settings: Settings, loaded: LoadedAccounts) -> Settings:
    """``settings`` with the database's accounts beside the config's; ``ConfigError`` naming an
    account defined in both places (disabled or invalid rows count: the name is taken)."""
    names = set(loaded.accounts) | loaded.disabled | set(loaded.invalid)
    both = sorted(names & set(settings.accounts))
    if both:
        raise ConfigError(in_both_places(both[0], "keep one"))
    return settings.model_copy(update={"accounts": {**settings.accounts, **loaded.accounts}})


async def with_database_accounts(
    settings: Settings, source: Any
) -> tuple[Settings, LoadedAccounts]:
    """``settings`` merged with the accounts read from ``source`` (a pool or a connection), their
    secrets added to the log redactor; ``ConfigError``/``SealError`` as above."""
    loaded = load_accounts(await account_rows(source), settings.keyring())
    REDACTOR.add(loaded.secrets)
    return merge_accounts(settings, loaded), loaded


async def check_config_names(source: Any, names: Collection[str]) -> None:
    """``ConfigError`` naming an account of the config file (``names``) that the table has too
    (disabled or not: the name is taken), in one query on those names alone."""
    taken = await account_versions(source, names)
    if taken:
        raise ConfigError(in_both_places(min(taken), "keep one"))


async def check_keys(source: Any, keyring: Keyring) -> None:
    """Open one enabled account's secret per key id the table uses: ``SealError`` naming that
    account when the key is missing or wrong (which every account under it would suffer). A
    single damaged row is found when its account is opened, and left out then."""
    for name, sealed in await account_key_samples(source):
        keyring.open(name, sealed)


class DatabaseLoader:
    """The fleet's ``Loader``: the named database accounts read in one query, their secrets
    opened and settings checked (as ``load_accounts`` does, one row at a time), each with its
    row's version; a disabled one is left out, as a missing one is."""

    def __init__(self, pool: Pool, keyring: Keyring) -> None:
        self._pool = pool
        self._keyring = keyring

    async def __call__(
        self, names: list[str], read: ReadAccounts | None = None
    ) -> dict[str, Loaded]:
        """``read``: rows the claim's walk brought already; the query runs only when it lacks
        one of ``names``."""
        if read is not None and all(name in read for name in names):
            rows = [held for name in names if (held := read[name]) is not None]
        else:
            rows = await account_rows_named(self._pool, names)
        found: dict[str, Loaded] = {}
        secrets: list[str] = []
        for row, version in rows:
            if not row.enabled:
                continue
            try:
                opened = {} if row.secret is None else self._keyring.open(row.name, row.secret)
                secrets.extend(v for v in opened.values() if len(v) >= MIN_SECRET_LENGTH)
                checked = checked_account(row, opened)
                checked.settings.resolve_token()
            except ConfigError as exc:  # SealError is one
                found[row.name] = Loaded(version, str(exc))
                continue
            found[row.name] = Loaded(version, checked)
        # Once per claim, not per account: the redactor re-sorts its secrets on each add.
        REDACTOR.add(secrets)
        warn_insecure(
            {n: c.account for n, c in found.items() if isinstance(c.account, CheckedAccount)}
        )
        return found
