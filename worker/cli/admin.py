"""``invoice-sync migrate | schema | check-config | accounts``: the schema, the config, and
the operator's switch for provider accounts."""

from __future__ import annotations

import argparse
import asyncio

from worker.cli.pool import with_pool
from worker.config import Settings
from worker.engine.runtimes import build_runtimes
from worker.errors import InputError
from worker.invoice import json_schema_text
from worker.store import migrate
from worker.store.accounts import AccountStore
from worker.store.audit import cli_actor
from worker.store.database import Pool


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
    """Build every account's runtime, as `run` does, and print what each will use."""
    runtimes = build_runtimes(settings)  # builds every adapter: catches provider option errors
    for name, runtime in runtimes.items():
        print(
            f"account {name}: {runtime.provider_name}, {runtime.gate.rate}, "
            f"concurrency {runtime.gate.concurrency}"
        )
    print("config OK")
    return 0


def cmd_accounts(args: argparse.Namespace, settings: Settings) -> int:
    """List the accounts (configured or known to the database), or pause or resume one."""
    if args.action != "list" and not args.name:
        raise InputError(f"accounts {args.action}: name the account")
    return asyncio.run(with_pool(settings, lambda pool: _accounts(pool, args, settings)))


async def _accounts(pool: Pool, args: argparse.Namespace, settings: Settings) -> int:
    store = AccountStore(pool)
    if args.action == "pause":
        note = f"paused by an operator: {args.reason}" if args.reason else "paused by an operator"
        await store.account_pause(args.name, note, actor=cli_actor(), reason=args.reason)
        print(f"paused {args.name}")
        return 0
    if args.action == "resume":
        resumed = await store.account_resume(args.name, actor=cli_actor(), reason=args.reason)
        print(f"resumed {args.name}" if resumed else f"{args.name} was not paused")
        return 0
    states = {s.account: s for s in await store.account_state_list()}
    for name in sorted(set(settings.accounts) | set(states)):
        state = states.get(name)
        provider = (
            settings.accounts[name].provider if name in settings.accounts else "(not configured)"
        )
        if state is not None and state.paused:
            print(f"{name}  {provider}  paused: {state.pause_reason} ({state.pause_error})")
        else:
            print(f"{name}  {provider}  active")
    return 0
