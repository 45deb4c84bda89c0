"""The ``accounts`` subcommands' arguments: pause and resume for any account, and add, update,
remove, show, rotate-key and new-key for accounts held in the database.

A secret is never an argument (``ps`` and shell histories show arguments): it comes from a file
or standard input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from worker.cli.argument_values import path_argument

EXAMPLES = {
    "list": "invoice-sync accounts list",
    "pause": "invoice-sync accounts pause shop-billclap",
    "resume": "invoice-sync accounts resume shop-billclap",
    "add": "invoice-sync accounts add shop-42 --provider billclap "
    "--set base_url=https://api.billclap.com --secret-file token.txt",
    "update": "invoice-sync accounts update shop-42 --rate-limit 120/minute --secret-stdin < t.txt",
    "remove": "invoice-sync accounts remove shop-42",
    "show": "invoice-sync accounts show shop-42",
    "rotate-key": "invoice-sync --config new-key.toml accounts rotate-key --batch 100",
    "new-key": "invoice-sync accounts new-key > secret.key",
}

Add = Callable[..., argparse.ArgumentParser]


def configure_accounts(accounts: argparse.ArgumentParser, add: Add) -> None:
    """Each ``accounts ACTION`` under ``accounts``; ``add(parent, name, help, example, handler)``
    makes one subparser."""
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(
        actions,
        "list",
        "every account, where it is defined and whether it is paused",
        EXAMPLES["list"],
        "accounts:cmd_list",
    ).set_defaults(name=None)
    for verb, what in (
        ("pause", "stop claiming an account's rows"),
        ("resume", "claim an account's rows again"),
    ):
        switch = add(actions, verb, what, EXAMPLES[verb], f"accounts:cmd_{verb}")
        switch.add_argument("name")
        switch.add_argument("--reason", help="why, recorded in the audit log with the action")
    _add_parser(
        add(actions, "add", "add an account to the database", EXAMPLES["add"], "accounts:cmd_add")
    )
    _update_parser(
        add(
            actions,
            "update",
            "change an account held in the database",
            EXAMPLES["update"],
            "accounts:cmd_update",
        )
    )
    remove = add(
        actions,
        "remove",
        "remove an account held in the database (refused while it has rows to send)",
        EXAMPLES["remove"],
        "accounts:cmd_remove",
    )
    remove.add_argument("name")
    remove.add_argument(
        "--force",
        action="store_true",
        help="with rows still to send: pause the account instead of removing it",
    )
    add(
        actions,
        "show",
        "an account's settings (never its secret)",
        EXAMPLES["show"],
        "accounts:cmd_show",
    ).add_argument("name")
    rotate = add(
        actions,
        "rotate-key",
        "re-encrypt every secret under the current secret_key",
        EXAMPLES["rotate-key"],
        "accounts:cmd_rotate_key",
    )
    rotate.add_argument(
        "--batch", type=int, default=100, help="accounts re-encrypted per transaction (default 100)"
    )
    add(
        actions,
        "new-key",
        "print a fresh secret key (32 random bytes, base64)",
        EXAMPLES["new-key"],
        "accounts:cmd_new_key",
    )


def _add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--provider", required=True, help="billclap, billit or refrens")
    _settings_flags(parser)
    _secret_flags(parser, required=True)


def _update_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    _settings_flags(parser)
    parser.add_argument(
        "--unset", action="append", default=[], metavar="KEY", help="drop an option (repeatable)"
    )
    _secret_flags(parser, required=False)
    enabled = parser.add_mutually_exclusive_group()
    enabled.add_argument("--enable", dest="enabled", action="store_true", default=None)
    enabled.add_argument("--disable", dest="enabled", action="store_false")


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="options",
        help="a non-secret option, e.g. base_url=https://... or url_key=acme; "
        "a JSON number, true/false or null is taken as such (repeatable)",
    )
    parser.add_argument("--rate-limit", help='requests per period, e.g. "60/minute"')
    parser.add_argument("--concurrency", type=int, help="calls at once (1 to 1000)")


def _secret_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--secret-file", type=path_argument, metavar="FILE", help="a file holding the secret"
    )
    source.add_argument("--secret-stdin", action="store_true", help="read the secret from stdin")
    parser.add_argument(
        "--secret-field",
        choices=("token", "app_secret"),
        default="token",
        help="what the secret is: the provider token (default) or a Refrens "
        "app_secret (with --set app_id=...)",
    )
