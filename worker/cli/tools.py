"""``invoice-sync sandbox | demo``: development tools. Each imports ``worker.testing`` or
``worker.demo`` inside its function, so no other command loads them."""

from __future__ import annotations

import argparse

from worker.config import Settings


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    """Serve one provider's sandbox until a signal stops it."""
    from worker.testing.sandbox.server import run_from_args  # noqa: PLC0415 - see module doc

    return run_from_args(args)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo end to end (or, with ``--serve``, the database a kept run left)."""
    from worker.demo.extra import require_demo_extra  # noqa: PLC0415 - see module doc

    require_demo_extra()  # before the import below, which needs rich
    from worker.demo.command import run_from_args  # noqa: PLC0415 - the demo extra's

    return run_from_args(args, settings)
