"""``invoice-sync accounts``: list, pause and resume any account; add, update, remove, show and
re-key the accounts held in the database (``invoice_sync.account``).

Every change is written with its audit entry in one transaction. A secret comes from a file or
standard input, is sealed before it leaves this process, and is never printed: ``show`` says
whether there is one and which key seals it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from worker.cli.pool import with_pool
from worker.cli.tables import printable
from worker.config import Settings
from worker.config.accounts import account_name_problem
from worker.config.credentials import UnusableSecretError, checked_secret, secret_from_file
from worker.durations import parse_rate
from worker.engine.database_accounts import account_settings, options_problem
from worker.errors import ConfigError, InputError
from worker.providers.registry import PROVIDERS
from worker.sealed import Keyring, Sealed, new_key
from worker.store.account_rows import AccountExistsError, AccountRow, AccountWriter, account_rows
from worker.store.accounts import AccountStore
from worker.store.audit import cli_actor
from worker.store.database import Pool

DEFAULT_RATE = "60/minute"
DEFAULT_CONCURRENCY = 4


def cmd_new_key(args: argparse.Namespace, settings: Settings) -> int:
    """Print a fresh key; nothing is stored."""
    print(new_key())
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every account the config or the database defines or the outbox state knows."""
    return asyncio.run(with_pool(settings, lambda pool: _list(pool, settings)))


async def _list(pool: Pool, settings: Settings) -> int:
    states = {s.account: s for s in await AccountStore(pool).account_state_list()}
    rows = {r.name: r for r in await account_rows(pool)}
    for name in sorted(set(settings.accounts) | set(rows) | set(states)):
        if name in settings.accounts:
            where = f"{settings.accounts[name].provider}  config"
        elif name in rows:
            where = f"{rows[name].provider}  database" + (
                "" if rows[name].enabled else ", disabled"
            )
        else:
            where = "(not configured)"
        state = states.get(name)
        if state is not None and state.paused:
            paused = f"paused: {state.pause_reason} ({state.pause_error})"
            print(printable(f"{name}  {where}  {paused}"))
        else:
            print(printable(f"{name}  {where}  active"))
    return 0


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    async def pause(pool: Pool) -> None:
        note = f"paused by an operator: {args.reason}" if args.reason else "paused by an operator"
        await AccountStore(pool).account_pause(
            args.name, note, actor=cli_actor(), reason=args.reason
        )

    asyncio.run(with_pool(settings, pause))
    print(f"paused {args.name}")
    return 0


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    resumed = asyncio.run(
        with_pool(
            settings,
            lambda pool: AccountStore(pool).account_resume(
                args.name, actor=cli_actor(), reason=args.reason
            ),
        )
    )
    print(f"resumed {args.name}" if resumed else f"{args.name} was not paused")
    return 0


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Check everything (name, provider, options, secret) before the INSERT."""
    name = args.name
    problem = account_name_problem(name)
    if problem is not None:
        raise InputError(f"accounts add: {problem}")
    if name in settings.accounts:
        raise InputError(f"accounts add: {name} is defined in the config file")
    if args.provider not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        raise InputError(f"accounts add: provider {args.provider!r} is not one of {known}")
    keyring = settings.keyring()
    secrets = {args.secret_field: _read_secret(args)}
    options = _changed_options({}, args.options, [])
    row = AccountRow(
        name=name,
        provider=args.provider,
        options=options,
        rate_limit=args.rate_limit or DEFAULT_RATE,
        concurrency=DEFAULT_CONCURRENCY if args.concurrency is None else args.concurrency,
        enabled=True,
        secret=keyring.seal(name, secrets),
    )
    _check(row, secrets, "add")

    async def insert(pool: Pool) -> None:
        try:
            await AccountWriter(pool, cli_actor()).account_insert(row)
        except AccountExistsError:
            raise InputError(f"accounts add: {name} exists already") from None

    asyncio.run(with_pool(settings, insert))
    print(f"added {name} ({row.provider})")
    return 0


def cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    """Merge the flags into the stored row under its lock, check the result, write it."""
    keyring = settings.keyring()
    new_secret = None if not (args.secret_file or args.secret_stdin) else _read_secret(args)

    def change(row: AccountRow) -> AccountRow:
        secrets = _opened(keyring, row)
        sealed = row.secret
        if new_secret is not None:
            secrets = {args.secret_field: new_secret}
            sealed = keyring.seal(row.name, secrets)
        updated = replace(
            row,
            options=_changed_options(row.options, args.options, args.unset),
            rate_limit=args.rate_limit or row.rate_limit,
            concurrency=row.concurrency if args.concurrency is None else args.concurrency,
            enabled=row.enabled if args.enabled is None else args.enabled,
            secret=sealed,
        )
        _check(updated, secrets, "update")
        return updated

    async def update(pool: Pool) -> AccountRow | None:
        return await AccountWriter(pool, cli_actor()).account_update(args.name, change)

    if asyncio.run(with_pool(settings, update)) is None:
        raise InputError(f"accounts update: no account {args.name} in the database")
    print(f"updated {args.name}")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Remove, or refuse (rows to send), or with ``--force`` pause instead."""

    async def remove(pool: Pool) -> tuple[bool, int]:
        writer = AccountWriter(pool, cli_actor())
        return await writer.account_delete(args.name, force=args.force)

    if args.name in settings.accounts:
        raise InputError(f"accounts remove: {args.name} is defined in the config file")
    removed, pending = asyncio.run(with_pool(settings, remove))
    if removed:
        print(f"removed {args.name}")
        return 0
    if pending == 0:
        raise InputError(f"accounts remove: no account {args.name} in the database")
    if not args.force:
        raise InputError(
            f"accounts remove: {args.name} has {pending} rows still to send; let them drain, "
            "cancel them, or pause it with --force"
        )
    print(f"paused {args.name} instead of removing it: {pending} rows still to send")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def get(pool: Pool) -> AccountRow | None:
        return await AccountWriter(pool, cli_actor()).account_row(args.name)

    row = asyncio.run(with_pool(settings, get))
    if row is None:
        raise InputError(f"accounts show: no account {args.name} in the database")
    secret = "none" if row.secret is None else f"set (key id {row.secret.key_id})"
    for label, value in (
        ("account", row.name), ("provider", row.provider),
        ("options", json.dumps(row.options, sort_keys=True)), ("rate_limit", row.rate_limit),
        ("concurrency", row.concurrency), ("enabled", str(row.enabled).lower()),
        ("secret", secret), ("created_at", row.created_at), ("updated_at", row.updated_at),
        ("updated_by", row.updated_by),
    ):  # fmt: skip
        print(f"{label + ':':<13}{printable(value)}")
    return 0


def cmd_rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    """Re-seal every secret not under the current key, a batch per transaction."""
    keyring = settings.keyring()
    current = keyring.current_id
    if current is None:
        raise ConfigError("secret_key: not set; rotate-key seals under the current secret_key")
    if not 1 <= args.batch <= 10_000:
        raise InputError("accounts rotate-key: --batch must be between 1 and 10000")

    def reseal(name: str, sealed: Sealed) -> Sealed:
        return keyring.seal(name, keyring.open(name, sealed))

    async def rotate(pool: Pool) -> tuple[int, int]:
        writer, total = AccountWriter(pool, cli_actor()), 0
        while done := await writer.account_rekey_batch(current, args.batch, reseal):
            total += done
        return total, await writer.account_old_key_count(current)

    total, left = asyncio.run(with_pool(settings, rotate))
    print(f"re-encrypted {total} secrets under key {current}")
    if left:  # rows another transaction held: SKIP LOCKED passed them by
        print(f"{left} secrets are still under an older key: run rotate-key again")
        return 1
    return 0


def _read_secret(args: argparse.Namespace) -> str:
    try:
        if args.secret_stdin:
            return checked_secret(sys.stdin.read(), "--secret-stdin").get_secret_value()
        return secret_from_file(Path(args.secret_file), "--secret-file").get_secret_value()
    except UnusableSecretError as exc:
        raise InputError(f"accounts {args.action}: {exc}") from exc


def _changed_options(
    options: dict[str, Any], assignments: list[str], unset: list[str]
) -> dict[str, Any]:
    changed = {k: v for k, v in options.items() if k not in unset}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {assignment.split('=')[0]!r}: expected KEY=VALUE")
        changed[key.strip()] = _option_value(text)
    problem = options_problem(changed)
    if problem is not None:
        raise InputError(f"--set: {problem}")
    return changed


def _option_value(text: str) -> Any:
    # Numbers, booleans and null as JSON; everything else (URLs, keys) as the text given.
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def _opened(keyring: Keyring, row: AccountRow) -> dict[str, str]:
    return {} if row.secret is None else keyring.open(row.name, row.secret)


def _check(row: AccountRow, secrets: dict[str, str], action: str) -> None:
    try:
        parse_rate(row.rate_limit)
        account_settings(row, secrets)
    except (ConfigError, ValueError) as exc:
        raise InputError(f"accounts {action}: {exc}") from exc
