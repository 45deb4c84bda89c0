"""``python -m bench.daemon ARGS``: the real ``invoice-sync`` CLI with the instant provider
registered, so a daemon subprocess can run against it (backlog scaling)."""

from __future__ import annotations

from bench.instant import register
from worker.cli.main import main

if __name__ == "__main__":
    register()
    raise SystemExit(main())
