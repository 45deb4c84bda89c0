"""``invoice-sync enqueue``: bulk load of a JSON Lines file into the outbox.

Every line is validated (the payload against the canonical invoice) before it is written; bad
lines are reported by line number and the good ones are loaded in chunks of one COPY each, in
file order. This module is the command; the lines are read by ``worker.cli.enqueue_line`` and
loaded by the block pipeline, ``worker.cli.enqueue_blocks``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import BinaryIO

from worker.cli.enqueue_blocks import EnqueueReport, enqueue_stream
from worker.cli.pool import with_pool
from worker.config import Settings
from worker.errors import InputError
from worker.store.database import Pool
from worker.store.outbox import Outbox

# More parser processes than this only queue up behind the COPY.
MAX_ENQUEUE_PARSERS = 4


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    """Load ``args.file`` (``-``: standard input); exit 1 if any line was bad."""
    accounts = frozenset(settings.accounts) if settings.accounts else None
    # Validation is CPU-bound: one parser process per core, the COPY in this one.
    parsers = min(os.cpu_count() or 1, MAX_ENQUEUE_PARSERS)

    source, newline = _input(args.file)

    async def load(pool: Pool) -> EnqueueReport:
        # The load claims nothing, so it needs no lease owner of the daemon's form (which
        # would import the engine, a fifth of a second of the command's start-up).
        outbox = Outbox(pool, worker_id="enqueue")
        return await enqueue_stream(
            stream, outbox, accounts=accounts, parsers=parsers, newline=newline
        )

    with source as stream:
        report = asyncio.run(with_pool(settings, load))
    for number, message in report.bad[:100]:
        print(f"line {number}: {message}", file=sys.stderr)
    if len(report.bad) > 100:
        print(f"... and {len(report.bad) - 100} more bad lines", file=sys.stderr)
    print(
        f"read {report.lines} lines: loaded {report.loaded}, already queued, synced or cancelled "
        f"{report.repeated}, bad {len(report.bad)}"
    )
    return 1 if report.bad else 0


def _input(file: str) -> tuple[contextlib.AbstractContextManager[BinaryIO], str | None]:
    """``enqueue``'s input as bytes, and where its lines end as Python would read it as text:
    standard input for ``-`` (left open; lines end at ``\\n``), else the file (at ``\\n``,
    ``\\r\\n`` or ``\\r``). Both are then read as UTF-8 with ``surrogateescape``, whatever the
    locale: a line holding bytes that are not UTF-8 is one bad line, reported by number, not a
    traceback that loses the rest."""
    if file == "-":
        return contextlib.nullcontext(sys.stdin.buffer), "\n"
    try:
        return Path(file).open("rb"), None
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from exc
