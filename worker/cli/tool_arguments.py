"""The ``sandbox`` and ``demo`` subcommands' arguments: kept in the cli, away from the sandboxes
and the demo, so that building the parser loads neither (``worker.cli.tools`` imports those
when one of these commands runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

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


def configure_demo(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` subcommand's arguments (``worker.demo.command`` reads them)."""
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
        help="after the run, keep the database and the web console open until Ctrl-C "
        "(with a --data-dir a run already filled: serve it without running again)",
    )
