"""``invoice-sync``: argparse subcommands, each a thin wrapper over library calls.

Exit codes: 0 done, 1 failure, 2 bad usage or config. An operator's mistake (bad config, no
database, an unreadable file) prints one line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from worker import __version__
from worker.config import Settings, config_path, load_settings
from worker.errors import ConfigError, InputError, InvoiceSyncError
from worker.logs import configure_logging

Handler = Callable[[argparse.Namespace, Settings], int]

EPILOG = """examples:
  invoice-sync --config invoice-sync.toml migrate
  invoice-sync --config invoice-sync.toml run
  invoice-sync --config invoice-sync.toml run --drain
  invoice-sync --config invoice-sync.toml enqueue invoices.jsonl
  invoice-sync --config invoice-sync.toml status --json
  invoice-sync --config invoice-sync.toml status --watch --until-drained
  invoice-sync --config invoice-sync.toml dlq list --reason rejected --since 2h
  invoice-sync --config invoice-sync.toml dlq replay 4711 --payload fixed-4711.json
  invoice-sync sandbox --provider billclap --port 8081
"""


class Parser(argparse.ArgumentParser):
    """argparse with a usage mistake as one line (exit 2) rather than the usage block.

    Subcommands' parsers are made with the parent's class, so this reaches every level.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Typed as the base class: the subcommand modules take ArgumentParser's subparsers.
    parser: argparse.ArgumentParser = Parser(
        prog="invoice-sync",
        description="Turns rows in a PostgreSQL outbox into invoices at an invoicing provider.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", help="TOML config (env INVOICE_SYNC_CONFIG)")
    parser.add_argument("--version", action="version", version=f"invoice-sync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from worker.cli import commands as handlers  # noqa: PLC0415 - keeps `--help` fast

    handlers.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        # schema and sandbox need no config: not even the environment's, which may hold a
        # partial override (INVOICE_SYNC_ACCOUNTS__SHOP__BASE_URL) only a config file completes.
        # Nor does the demo, unless told to run in the configured database.
        configless = args.command in {"schema", "sandbox"} or (
            args.command == "demo" and not args.use_configured_database
        )
        settings = Settings.model_construct() if configless else _settings(args)
        return handler(args, settings)
    except ConfigError as exc:
        print(f"invoice-sync: config error: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"invoice-sync: {exc}", file=sys.stderr)
        return 2
    except InvoiceSyncError as exc:
        print(f"invoice-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    from worker.engine.runtimes import config_secrets  # noqa: PLC0415 - providers load here

    settings = load_settings(config_path(args.config))
    # Checks every account's provider options too (the path `run` builds its adapters by), so
    # a wrong option stops any command, as a wrong key does.
    secrets = config_secrets(settings)
    daemon = args.command == "run"
    configure_logging(
        fmt=settings.observe.log_format,
        level=settings.observe.log_level,
        secrets=secrets,
        stream=None if daemon else sys.stderr,
    )
    return settings
