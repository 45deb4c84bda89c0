"""``invoice-sync migrate | schema | check-config``: the schema and the config."""

from __future__ import annotations

import argparse
import asyncio

from worker.cli.pool import with_pool
from worker.config import Settings
from worker.engine.database_accounts import with_database_accounts
from worker.engine.runtimes import AccountRuntime, build_runtimes
from worker.invoice import json_schema_text
from worker.store import migrate
from worker.store.database import StoreUnavailableError


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the pending migrations and say which (or that none were)."""
    applied = asyncio.run(migrate.migrate(settings.database_dsn()))
    if applied:
        print(f"applied migrations: {', '.join(f'{v:03d}' for v in applied)}")
    else:
        print(f"nothing to apply: the schema is at version {migrate.latest_version():03d}")
    return 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    """Print the canonical invoice's JSON Schema."""
    print(json_schema_text())
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    """Build every account's runtime, as `run` does, and print what each will use: the file's,
    then the database's (unless ``--no-database``; a database out of reach is said, not fatal:
    the file can be checked where the database is not, as in CI)."""
    runtimes = build_runtimes(settings)  # builds every adapter: catches provider option errors
    _print_runtimes(runtimes)
    if settings.database_url is None or args.no_database:
        print("config OK")
        return 0
    try:
        _, loaded = asyncio.run(
            with_pool(settings, lambda pool: with_database_accounts(settings, pool))
        )
    except StoreUnavailableError as exc:
        print(f"config OK; accounts in the database not checked: {exc}")
        return 0
    _print_runtimes(build_runtimes(settings.model_copy(update={"accounts": loaded.accounts})))
    for name, problem in sorted(loaded.invalid.items()):
        print(f"account {name}: skipped, invalid: {problem}")
    skipped = f", {len(loaded.invalid)} accounts in the database skipped" if loaded.invalid else ""
    print(f"config OK{skipped}")
    return 0


def _print_runtimes(runtimes: dict[str, AccountRuntime]) -> None:
    for name, runtime in runtimes.items():
        print(
            f"account {name}: {runtime.provider_name}, {runtime.gate.rate}, "
            f"concurrency {runtime.gate.concurrency}"
        )
