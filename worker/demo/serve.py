"""``invoice-sync demo --serve``: the web console on the demo's database, held open until Ctrl-C.

After a run, the console serves the database the run just filled (the sandboxes have stopped;
the console reads only the database). ``--data-dir DIR --serve`` on a directory a run already
filled starts its database again and serves that, without running the demo again. The console
listens where ``[console] listen`` says (its default address) or, when something else already
holds that port, on any free loopback port: the address it prints is the one to open.
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import sys
from pathlib import Path

from worker.config import Settings, load_settings
from worker.console.serve import serve_console
from worker.demo.stack import Workspace, embedded_server, open_private
from worker.errors import InputError
from worker.store import migrate

CONSOLE_LISTEN = "127.0.0.1:9465"
"""The console's default address; the demo's config names it so ``console`` uses it too."""
CONSOLE_ADDRESS = f"http://{CONSOLE_LISTEN}/"
ANY_FREE_PORT = "127.0.0.1:0"


def write_admin_token(path: Path) -> Path:
    """A new admin token for the demo's console, in a 0600 file (the config names the file;
    the token itself is never printed)."""
    with open_private(path) as file:
        file.write(secrets.token_urlsafe(24) + "\n")
    return path


async def serve_until_stopped(settings: Settings, space: Workspace) -> None:
    """Serve the console on ``settings``' database until SIGINT or SIGTERM, printing its
    address (and how to log in) once it listens."""

    def started(address: str) -> None:
        login = (
            f"log in as {settings.console.admin_user} with the token in "
            f"{settings.console.admin_token_file}"
            if settings.console.admin_token_file is not None
            else "read-only"
        )
        kept = "" if space.kept else ", and removes the demo's temporary directory"
        print(
            f"\nThe console: {address}\n  ({login}). Ctrl-C stops it and the database{kept}.",
            flush=True,
        )

    try:
        await serve_console(settings, started=started)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        elsewhere = settings.console.model_copy(update={"listen": ANY_FREE_PORT})
        await serve_console(settings.model_copy(update={"console": elsewhere}), started=started)


def serve_kept(space: Workspace) -> int:
    """Start the database a ``--data-dir`` run kept, bring its schema up to date (the console
    reads the newest tables), and serve the console on it until Ctrl-C or SIGTERM."""
    if not space.config.is_file():
        raise InputError(
            f"{space.config} is missing: run `invoice-sync demo --data-dir {space.root}` again"
        )
    # Not the environment's INVOICE_SYNC_ overrides: they are a deployment's, not the demo's.
    settings = load_settings(space.config, environment=False)
    try:
        with embedded_server(space):
            print(f"The demo's PostgreSQL is up; {space.config} reaches it.", flush=True)
            asyncio.run(_migrated_and_served(settings, space))
    except KeyboardInterrupt:  # before the console listened (it handles Ctrl-C itself)
        print("invoice-sync demo: interrupted; the database is stopped", file=sys.stderr)
        return 130
    print("stopped", flush=True)
    return 0


async def _migrated_and_served(settings: Settings, space: Workspace) -> None:
    await migrate.migrate(settings.database_dsn())
    await serve_until_stopped(settings, space)
