"""The ``demo`` subcommand's arguments, apart from the demo itself so ``--help`` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_INVOICES = 3000


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--invoices",
        type=int,
        default=DEFAULT_INVOICES,
        metavar="N",
        help=f"how many sample invoices (default {DEFAULT_INVOICES})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep the database, config and worker log here, and reuse them "
        "(default: a temporary directory, removed at exit)",
    )
    parser.add_argument("--seed", type=int, default=7, help="sample data and faults (default 7)")
    parser.add_argument("--no-faults", action="store_true", help="inject no faults")
    parser.add_argument(
        "--use-configured-database",
        action="store_true",
        help="run in the configured database (--config, INVOICE_SYNC_CONFIG, "
        "INVOICE_SYNC_DATABASE_URL[_FILE]) instead of an embedded one, under "
        "account names of its own, removing its rows when it ends; "
        "without it a configured database is ignored",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="with --data-dir: only start the database a kept run left, until Ctrl-C",
    )
