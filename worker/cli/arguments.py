"""Every subcommand's arguments, help and example, and the function that runs it.

Building the parser must stay cheap (``--help`` is answered from it): this module imports
``argparse`` and the reason codes, nothing else; the ``sandbox`` and ``demo`` arguments are
in the cli too (``tool_arguments``), so only running those commands loads ``worker.testing``
or ``worker.demo``. A subcommand names its handler as ``"module:function"`` under ``worker.cli``;
``main`` imports that module only when the subcommand runs, so each command loads its layer
(the store, the engine, the sandboxes) then and not before.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from worker.cli.account_arguments import configure_accounts
from worker.cli.argument_values import filter_argument, path_argument
from worker.cli.tool_arguments import configure_demo, configure_sandbox
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
    _show(commands)
    _console(commands)
    _cancel(commands)
    _demo(commands)


def _add(
    parent: Subparsers, name: str, help_: str, example: str, handler: str | None = None
) -> argparse.ArgumentParser:
    label = "examples" if "\n" in example else "example"
    parser = parent.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=f"{label}:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def _migrate(commands: Subparsers) -> None:
    _add(
        commands,
        "migrate",
        "apply pending schema migrations (safe to run concurrently)",
        "invoice-sync --config invoice-sync.toml migrate",
        "admin:cmd_migrate",
    )


def _admin(commands: Subparsers) -> None:
    _add(
        commands,
        "schema",
        "print the canonical invoice's JSON Schema",
        "invoice-sync schema > invoice.schema.json",
        "admin:cmd_schema",
    )
    _add(
        commands,
        "check-config",
        "validate the configuration and exit",
        "invoice-sync --config invoice-sync.toml check-config",
        "admin:cmd_check_config",
    ).add_argument(
        "--no-database",
        action="store_true",
        help="check the config file alone, not the accounts held in the database",
    )
    accounts = _add(
        commands,
        "accounts",
        "list, pause, resume, add, update, remove or show provider accounts",
        "invoice-sync --config invoice-sync.toml accounts list\n"
        "  invoice-sync --config invoice-sync.toml accounts pause shop-billclap\n"
        "  invoice-sync --config invoice-sync.toml accounts add shop-42 --provider billclap "
        "--set base_url=https://api.billclap.com --secret-file token.txt",
    )
    configure_accounts(accounts, _add)


def _run(commands: Subparsers) -> None:
    run = _add(
        commands,
        "run",
        "run the worker daemon",
        "invoice-sync --config invoice-sync.toml run --drain",
        "run:cmd_run",
    )
    run.add_argument(
        "--drain",
        action="store_true",
        help="exit 0 once nothing is pending or in flight (scheduled retries included)",
    )


def _enqueue(commands: Subparsers) -> None:
    enqueue = _add(
        commands,
        "enqueue",
        "bulk-load JSON Lines {account, idempotency_key, payload}",
        "invoice-sync --config invoice-sync.toml enqueue invoices.jsonl",
        "enqueue:cmd_enqueue",
    )
    enqueue.add_argument(
        "file", type=path_argument, help="a JSON Lines file, or - for standard input"
    )


def _status(commands: Subparsers) -> None:
    status = _add(
        commands,
        "status",
        "counts by account and state, dead letters by reason",
        "invoice-sync --config invoice-sync.toml status --json\n"
        "  invoice-sync --config invoice-sync.toml status --watch --until-drained",
        "status:cmd_status",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument(
        "--watch",
        action="store_true",
        help="live progress per account while a load drains (Ctrl-C stops)",
    )
    status.add_argument(
        "--interval",
        default="1s",
        metavar="DURATION",
        help="with --watch: refresh interval (default 1s)",
    )
    status.add_argument(
        "--until-drained",
        action="store_true",
        help="with --watch: exit 0 once nothing is pending or in flight "
        "(rows held by paused accounts wait for an operator and do not count)",
    )


def _dlq(commands: Subparsers) -> None:
    dlq = _add(commands, "dlq", "list, show, replay or purge dead letters", DLQ_EXAMPLES["dlq"])
    actions = dlq.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")
    listing = _add(
        actions, "list", "list dead letters, newest first", DLQ_EXAMPLES["list"], "dlq:cmd_list"
    )
    _add_filters(listing)
    listing.add_argument("--limit", default="50", help="at most this many rows (default 50)")
    listing.add_argument(
        "--include-replayed", action="store_true", help="also list dead letters already replayed"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = _add(
        actions, "show", "everything about one dead letter", DLQ_EXAMPLES["show"], "dlq:cmd_show"
    )
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
    replay.add_argument(
        "--all",
        action="store_true",
        help="with no ids or filters: replay every dead letter not yet replayed",
    )
    replay.add_argument(
        "--payload",
        type=path_argument,
        metavar="FILE",
        help="a corrected payload (canonical invoice JSON) for exactly one id",
    )
    replay.add_argument("--dry-run", action="store_true", help="report, change nothing")
    replay.add_argument("--note", help="why, recorded in the audit log (--reason is the filter)")
    purge = _add(
        actions, "purge", "delete old dead letters", DLQ_EXAMPLES["purge"], "dlq:cmd_purge"
    )
    purge.add_argument(
        "--older-than",
        required=True,
        metavar="DURATION",
        help="delete those that died longer ago than this, e.g. 30d",
    )
    purge.add_argument("--reason", type=filter_argument, help="only this reason code")
    purge.add_argument("--account", type=filter_argument, help="only this account")
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    purge.add_argument("--note", help="why, recorded in the audit log (--reason is the filter)")


def _show(commands: Subparsers) -> None:
    show = _add(
        commands,
        "show",
        "one invoice's story: where it is now and every attempt",
        "invoice-sync --config invoice-sync.toml show shop order-4711 --json",
        "show:cmd_show",
    )
    show.add_argument("account", help="the account the invoice was enqueued for")
    show.add_argument("key", help="its idempotency key")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _cancel(commands: Subparsers) -> None:
    cancel = _add(
        commands,
        "cancel",
        "withdraw an invoice not yet sent (audited); prints the state it ends in",
        'invoice-sync --config invoice-sync.toml cancel shop-billclap order-123 --reason "order cancelled"',
        "cancel:cmd_cancel",
    )
    cancel.add_argument("account", help="the row's account")
    cancel.add_argument("key", help="the row's idempotency key")
    cancel.add_argument("--reason", required=True, help="why (kept with the row and in the audit)")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", type=filter_argument, help=f"only this reason code ({', '.join(Reason)})"
    )
    parser.add_argument("--account", type=filter_argument, help="only this account")
    parser.add_argument(
        "--since",
        type=filter_argument,
        metavar="WHEN",
        help="dead since: a duration ago (2h, 3d) or an ISO timestamp (UTC if no offset)",
    )


def _console(commands: Subparsers) -> None:
    _add(
        commands,
        "console",
        "serve the operator web console ([console] listen; read-only without an admin token)",
        "invoice-sync --config invoice-sync.toml console",
        "console:cmd_console",
    )


def _sandbox(commands: Subparsers) -> None:
    sandbox = _add(
        commands,
        "sandbox",
        "serve a provider sandbox on loopback",
        "invoice-sync sandbox --provider billclap --port 8081 --error-rate 0.05",
        "tools:cmd_sandbox",
    )
    configure_sandbox(sandbox)


def _demo(commands: Subparsers) -> None:
    demo = _add(
        commands,
        "demo",
        "run everything end to end on an embedded PostgreSQL and local sandboxes",
        "invoice-sync demo --invoices 500 --data-dir ./invoice-sync-demo",
        "tools:cmd_demo",
    )
    configure_demo(demo)
