"""The configuration a subcommand runs with, and the logging set up from it."""

from __future__ import annotations

import argparse
import sys

from worker.config import Settings, config_path, load_settings
from worker.engine.runtimes import config_secrets
from worker.logs import configure_logging


def command_settings(args: argparse.Namespace) -> Settings:
    """The validated config for ``args.command``, logging configured to redact its secrets;
    ``ConfigError`` (one line naming the key) when the config is wrong."""
    if needs_no_config(args):
        return Settings.model_construct()
    settings = load_settings(config_path(args.config))
    # Checks every account's provider options too (the path `run` builds its adapters by), so
    # a wrong option stops any command, as a wrong key does.
    secrets = config_secrets(settings)
    configure_logging(
        fmt=settings.observe.log_format,
        level=settings.observe.log_level,
        secrets=secrets,
        stream=None if args.command == "run" else sys.stderr,
    )
    return settings


def needs_no_config(args: argparse.Namespace) -> bool:
    """schema and sandbox read no config: not even the environment's, which may hold a
    partial override (INVOICE_SYNC_ACCOUNTS__SHOP__BASE_URL) only a config file completes.
    Nor does `accounts new-key`, nor the demo unless told to run in the configured database."""
    if args.command in {"schema", "sandbox"}:
        return True
    if args.command == "accounts" and args.action == "new-key":  # prints a key, reads nothing
        return True
    return args.command == "demo" and not args.use_configured_database
