"""What the demo runs on, started and stopped so nothing outlives it: a workspace directory, the
embedded PostgreSQL, and one sandbox per demo account.

The embedded server is a separate process (it runs in its own session, so a Ctrl-C in the
terminal does not reach it); stopping it is what ``embedded_server`` guarantees on every way
out: a normal return, an exception, or a ``KeyboardInterrupt``. A Ctrl-C that lands while the
server starts or stops is held until that step is done, so a half-started server is never
abandoned.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO, TypeVar

from worker.demo.plan import DemoAccount
from worker.store.demo import demo_database_recreate
from worker.testing.postgres import EmbeddedPostgres, with_database
from worker.testing.sandbox.faults import FaultConfig
from worker.testing.sandbox.server import SandboxHandle, start_sandbox

DEMO_DATABASE = "invoice_sync_demo"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where the demo keeps its config, its worker log and (embedded) its database."""

    root: Path
    kept: bool

    @property
    def config(self) -> Path:
        return self.root / "invoice-sync.toml"

    @property
    def log(self) -> Path:
        return self.root / "worker.log"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def admin_token(self) -> Path:
        """The demo console's admin token (the config names this file)."""
        return self.root / "console-admin-token"


@contextmanager
def workspace(data_dir: Path | None) -> Iterator[Workspace]:
    """``data_dir`` (created if missing, kept) or a temporary directory removed on exit. A
    directory the demo creates is mode 0700, as the config it will hold may name a database's
    password; one that exists keeps its mode (``--data-dir .`` must not lock a user out of
    their own directory), the files are 0600 anyway. (As root, the embedded server opens the
    path to its data for the system user it runs as.)"""
    if data_dir is not None:
        make_private_dir(data_dir)
        yield Workspace(data_dir.resolve(), kept=True)
        return
    root = Path(tempfile.mkdtemp(prefix="invoice-sync-demo-"))  # 0700
    try:
        yield Workspace(root, kept=False)
    finally:
        with interrupts_deferred(reraise=False):
            shutil.rmtree(root, ignore_errors=True)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) with mode 0700 unless it is already a directory, which
    keeps its mode; ``OSError`` when it cannot be made."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # whatever the umask


def open_private(path: Path) -> TextIO:
    """``path`` opened for writing (truncated) with mode 0600, also when it existed: the
    demo's config and worker log may hold a password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def interrupts_deferred(*, reraise: bool = True) -> Iterator[None]:
    """Hold SIGINT for the block; afterwards raise ``KeyboardInterrupt`` if one came (unless
    ``reraise`` is False or the block is already failing). Main thread only."""
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and reraise:
        raise KeyboardInterrupt


def run_interruptibly(main: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(main())`` where a SIGINT at any moment cancels ``main`` (so its cleanup
    runs) and surfaces as ``KeyboardInterrupt``. A signal that lands while the loop is being
    set up is held and acted on once ``main`` starts; plain ``asyncio.run`` has a window there
    in which a Ctrl-C leaves half-built things behind."""
    early: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: early.append(signum))

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        # From here the loop handles SIGINT (and restores Python's default when it closes).
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, task.cancel)
        if early:
            raise asyncio.CancelledError
        return await main()

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def embedded_server(space: Workspace) -> Iterator[str]:
    """Start the embedded PostgreSQL in ``space.pgdata`` (reusing its data when kept); yield its
    URL; stop it on the way out, whatever the way out is."""
    server = EmbeddedPostgres(data_dir=space.pgdata)
    try:
        with interrupts_deferred():
            url = server.start()
        yield url
    finally:
        with interrupts_deferred(reraise=False):
            server.stop()


async def fresh_database(server_url: str) -> str:
    """Drop and recreate the demo's own database on the embedded server; its URL."""
    await demo_database_recreate(server_url)
    return with_database(server_url, DEMO_DATABASE)


@asynccontextmanager
async def sandboxes(
    accounts: Sequence[DemoAccount], faults: FaultConfig | None
) -> AsyncIterator[dict[str, SandboxHandle]]:
    """One sandbox per account on a free loopback port, each with its own fault sequence."""
    handles: dict[str, SandboxHandle] = {}
    try:
        for index, account in enumerate(accounts):
            own = None if faults is None else faults.updated({"seed": (faults.seed or 0) + index})
            handles[account.name] = await start_sandbox(
                account.profile.provider, faults=own, **account.sandbox_options
            )
        yield handles
    finally:
        for handle in handles.values():
            await handle.stop()
