"""``invoice-sync``: the parser, the dispatch to a subcommand, and the exit codes.

Exit codes: 0 done, 1 failure, 2 bad usage or config. An operator's mistake (bad config, no
database, an unreadable file) prints one line, never a traceback.

The parser is built from ``arguments`` alone, which loads no layer, so ``--help`` answers
at once. A subcommand's module (``admin``, ``run``, ``enqueue``, ``status``, ``dlq``,
``tools``) and the layers it wraps are imported only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from worker import __version__
from worker.cli.argument_values import path_argument, text_argument
from worker.cli.arguments import register
from worker.errors import ConfigError, InputError, InvoiceSyncError

if TYPE_CHECKING:
    from worker.config import Settings

Handler = Callable[[argparse.Namespace, "Settings"], int]

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

    Subcommands' parsers are made with the parent's class, so this reaches every level, and
    so does ``text_argument``, registered as the type of every argument that names none: a
    command line's bytes that are not UTF-8 stop here, not in the database.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("type", None, text_argument)
        self.register("action", "parsers", _Commands)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """Subcommands whose words reach the chosen command's parser untyped: that parser types
    each one as its own argument (and names it in an error), not all as ``COMMAND``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.type = path_argument


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's ``handler`` default names its function."""
    # Typed as the base class: the subcommands are added through ArgumentParser's subparsers.
    parser: argparse.ArgumentParser = Parser(
        prog="invoice-sync",
        description="Turns rows in a PostgreSQL outbox into invoices at an invoicing provider.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=path_argument, metavar="PATH", help="TOML config (env INVOICE_SYNC_CONFIG)"
    )
    parser.add_argument("--version", action="version", version=f"invoice-sync {__version__}")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's) and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        handler = handler_of(args.handler)
        # Imported here, not at the top: it loads the config and logging libraries, which
        # `--help` and a usage mistake never need.
        from worker.cli.config import command_settings  # noqa: PLC0415

        return handler(args, command_settings(args))
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
    except BrokenPipeError:
        # The reader went away (`invoice-sync schema | head`): nothing to report to it, and
        # the interpreter's own flush at exit must not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def handler_of(name: str) -> Handler:
    """The function a ``"module:function"`` name (under ``worker.cli``) stands for, its module
    imported now."""
    module, _, function = name.partition(":")
    handler: Handler = getattr(importlib.import_module(f"worker.cli.{module}"), function)
    return handler
