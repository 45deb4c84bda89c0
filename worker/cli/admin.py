"""``invoice-sync migrate | schema | check-config``: the schema and the config."""

from __future__ import annotations

import argparse
import asyncio

from worker.cli.pool import with_pool
from worker.config import Settings
from worker.engine.database_accounts import with_database_accounts
from worker.engine.runtimes import build_runtimes
from worker.invoice import json_schema_text
from worker.store import migrate


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
    """Build every account's runtime, as `run` does (the database's accounts too, unless
    ``--no-database`` or no database_url), and print what each will use."""
    invalid: dict[str, str] = {}
    if settings.database_url is not None and not args.no_database:
        settings, loaded = asyncio.run(
            with_pool(settings, lambda pool: with_database_accounts(settings, pool))
        )
        invalid = loaded.invalid
    runtimes = build_runtimes(settings)  # builds every adapter: catches provider option errors
    for name, runtime in runtimes.items():
        print(
            f"account {name}: {runtime.provider_name}, {runtime.gate.rate}, "
            f"concurrency {runtime.gate.concurrency}"
        )
    for name, problem in sorted(invalid.items()):
        print(f"account {name}: skipped, invalid: {problem}")
    print("config OK" if not invalid else f"config OK, {len(invalid)} database accounts skipped")
    return 0
