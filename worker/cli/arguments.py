"""Every subcommand's arguments, help and example, and the function that runs it.

Building the parser must stay cheap (``--help`` is answered from it): this module imports
``argparse`` and the reason codes, nothing else; the ``sandbox`` and ``demo`` arguments are
here too, so that only running those commands loads ``worker.testing`` or ``worker.demo``. A subcommand names its handler as ``"module:function"`` under ``worker.cli``;
``main`` imports that module only when the subcommand runs, so each command loads its layer
(the store, the engine, the sandboxes) then and not before.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from worker.outcome import Reason

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DLQ_EXAMPLES = {
    "dlq": "invoice-sync dlq list --reason rejected --since 2h",
    "list": "invoice-sync dlq list --account shop --since 2026-07-01T00:00 --json",
    "show": "invoice-sync dlq show 4711",
    "replay": "invoice-sync dlq replay 4711 --payload fixed-4711.json\n"
    "  invoice-sync dlq replay --reason credits_expired --account shop --dry-run",
    "purge": "invoice-sync dlq purge --older-than 30d --reason duplicate --dry-run",
}

SANDBOX_PROVIDERS = ("billclap", "billit", "refrens")
"""The providers that have a sandbox (``worker.testing.sandbox.SANDBOXES``' keys)."""

FAULT_FLAGS = {
    "latency": float,
    "jitter": float,
    "error_rate": float,
    "stall_rate": float,
    "stall_seconds": float,
    "reset_rate": float,
    "rate429_rate": float,
    "retry_after": float,
    "limit_rate": float,
    "limit_burst": float,
    "redirect_rate": float,
    "redirect_to": str,
    "inflate_rate": float,
    "inflate_mib": float,
    "drip_rate": float,
    "drip_seconds": float,
    "echo_rate": float,
    "seed": int,
}
"""One ``sandbox --flag`` per field of ``worker.testing.sandbox.faults.FaultConfig``."""

DEFAULT_INVOICES = 3000


def register(commands: Subparsers) -> None:
    """Add every subcommand to the top-level subparsers."""
    # In the order ``--help`` has always listed them.
    _migrate(commands)
    _run(commands)
    _enqueue(commands)
    _status(commands)
    _admin(commands)
    _sandbox(commands)
    _dlq(commands)
    _demo(commands)


def _add(
    parent: Subparsers, name: str, help_: str, example: str, handler: str | None = None
) -> argparse.ArgumentParser:
    label = "examples" if "\n" in example else "example"
    parser = parent.add_parser(
        name, help=help_, description=help_, epilog=f"{label}:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def _migrate(commands: Subparsers) -> None:
    _add(commands, "migrate", "apply pending schema migrations (safe to run concurrently)",
         "invoice-sync --config invoice-sync.toml migrate", "admin:cmd_migrate")  # fmt: skip


def _admin(commands: Subparsers) -> None:
    _add(commands, "schema", "print the canonical invoice's JSON Schema",
         "invoice-sync schema > invoice.schema.json", "admin:cmd_schema")  # fmt: skip
    _add(commands, "check-config", "validate the configuration and exit",
         "invoice-sync --config invoice-sync.toml check-config", "admin:cmd_check_config")  # fmt: skip
    accounts = _add(commands, "accounts", "list, pause or resume provider accounts",
                    "invoice-sync --config invoice-sync.toml accounts list\n"
                    "  invoice-sync --config invoice-sync.toml accounts pause shop-billclap\n"
                    "  invoice-sync --config invoice-sync.toml accounts resume shop-billclap",
                    "admin:cmd_accounts")  # fmt: skip
    accounts.add_argument("action", choices=["list", "pause", "resume"])
    accounts.add_argument("name", nargs="?", help="the account (for pause and resume)")


def _run(commands: Subparsers) -> None:
    run = _add(commands, "run", "run the worker daemon",
               "invoice-sync --config invoice-sync.toml run --drain", "run:cmd_run")  # fmt: skip
    run.add_argument("--drain", action="store_true",
                     help="exit 0 once nothing is pending or in flight (scheduled retries included)")  # fmt: skip


def _enqueue(commands: Subparsers) -> None:
    enqueue = _add(commands, "enqueue", "bulk-load JSON Lines {account, idempotency_key, payload}",
                   "invoice-sync --config invoice-sync.toml enqueue invoices.jsonl",
                   "enqueue:cmd_enqueue")  # fmt: skip
    enqueue.add_argument("file", help="a JSON Lines file, or - for standard input")


def _status(commands: Subparsers) -> None:
    status = _add(commands, "status", "counts by account and state, dead letters by reason",
                  "invoice-sync --config invoice-sync.toml status --json\n"
                  "  invoice-sync --config invoice-sync.toml status --watch --until-drained",
                  "status:cmd_status")  # fmt: skip
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--watch", action="store_true",
                        help="live progress per account while a load drains (Ctrl-C stops)")  # fmt: skip
    status.add_argument("--interval", default="1s", metavar="DURATION",
                        help="with --watch: refresh interval (default 1s)")  # fmt: skip
    status.add_argument("--until-drained", action="store_true",
                        help="with --watch: exit 0 once nothing is pending or in flight "
                        "(rows held by paused accounts wait for an operator and do not count)")  # fmt: skip


def _dlq(commands: Subparsers) -> None:
    dlq = _add(commands, "dlq", "list, show, replay or purge dead letters", DLQ_EXAMPLES["dlq"])
    actions = dlq.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")
    listing = _add(actions, "list", "list dead letters, newest first", DLQ_EXAMPLES["list"],
                   "dlq:cmd_list")  # fmt: skip
    _add_filters(listing)
    listing.add_argument("--limit", default="50", help="at most this many rows (default 50)")
    listing.add_argument("--include-replayed", action="store_true",
                         help="also list dead letters already replayed")  # fmt: skip
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = _add(actions, "show", "everything about one dead letter", DLQ_EXAMPLES["show"],
                "dlq:cmd_show")  # fmt: skip
    show.add_argument("id", help="the dead letter's id (its outbox id, as `dlq list` shows)")
    show.add_argument("--json", action="store_true", help="print JSON")
    replay = _add(
        actions,
        "replay",
        "move dead letters back to the outbox as new pending rows (refuses keys already synced or queued, and dead letters already replayed)",
        DLQ_EXAMPLES["replay"],
        "dlq:cmd_replay",
    )
    replay.add_argument("ids", nargs="*", help="dead letter ids (or select with the filters)")
    _add_filters(replay)
    replay.add_argument("--all", action="store_true",
                        help="with no ids or filters: replay every dead letter not yet replayed")  # fmt: skip
    replay.add_argument("--payload", metavar="FILE",
                        help="a corrected payload (canonical invoice JSON) for exactly one id")  # fmt: skip
    replay.add_argument("--dry-run", action="store_true", help="report, change nothing")
    purge = _add(actions, "purge", "delete old dead letters", DLQ_EXAMPLES["purge"],
                 "dlq:cmd_purge")  # fmt: skip
    purge.add_argument("--older-than", required=True, metavar="DURATION",
                       help="delete those that died longer ago than this, e.g. 30d")  # fmt: skip
    purge.add_argument("--reason", help="only this reason code")
    purge.add_argument("--account", help="only this account")
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help=f"only this reason code ({', '.join(Reason)})")
    parser.add_argument("--account", help="only this account")
    parser.add_argument("--since", metavar="WHEN",
                        help="dead since: a duration ago (2h, 3d) or an ISO timestamp (UTC if no offset)")  # fmt: skip


def _sandbox(commands: Subparsers) -> None:
    sandbox = _add(commands, "sandbox", "serve a provider sandbox on loopback",
                   "invoice-sync sandbox --provider billclap --port 8081 --error-rate 0.05",
                   "tools:cmd_sandbox")  # fmt: skip
    configure_sandbox(sandbox)


def configure_sandbox(parser: argparse.ArgumentParser) -> None:
    """The ``sandbox`` subcommand's arguments (``worker.testing.sandbox.server`` reads them)."""
    parser.add_argument("--provider", required=True, choices=SANDBOX_PROVIDERS)
    parser.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--token", action="append", help="an API token to accept (repeatable)")
    parser.add_argument("--credits", type=int, help="invoice credits (default: unlimited)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="any other sandbox option, e.g. --option api_plan=false",
    )
    faults = parser.add_argument_group("faults")
    for name, kind in FAULT_FLAGS.items():
        faults.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)


def _demo(commands: Subparsers) -> None:
    demo = _add(commands, "demo", "run everything end to end on an embedded PostgreSQL and local sandboxes",
                "invoice-sync demo --invoices 500 --data-dir ./invoice-sync-demo",
                "tools:cmd_demo")  # fmt: skip
    configure_demo(demo)


def configure_demo(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` subcommand's arguments (``worker.demo.command`` reads them)."""
    parser.add_argument("--invoices", type=int, default=DEFAULT_INVOICES, metavar="N",
                        help=f"how many sample invoices (default {DEFAULT_INVOICES})")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="keep the database, config and worker log here, and reuse them "
                             "(default: a temporary directory, removed at exit)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7, help="sample data and faults (default 7)")
    parser.add_argument("--no-faults", action="store_true", help="inject no faults")
    parser.add_argument("--use-configured-database", action="store_true",
                        help="run in the configured database (--config, INVOICE_SYNC_CONFIG, "
                             "INVOICE_SYNC_DATABASE_URL[_FILE]) instead of an embedded one, under "
                             "account names of its own, removing its rows when it ends; "
                             "without it a configured database is ignored")  # fmt: skip
    parser.add_argument("--serve", action="store_true",
                        help="with --data-dir: only start the database a kept run left, until Ctrl-C")  # fmt: skip
