"""Logging: structlog, JSON off a terminal, console on one, and secrets redacted on the way out.

Secrets should never be handed to a logger in the first place; the redaction processor is the
second line of defence, replacing any configured token or password wherever it appears.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"


class Redactor:
    """A structlog processor that replaces known secret values in every string of an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        merged = {s for s in (*self.secrets, *secrets) if s}
        # Longest first, so a token that contains another is replaced whole.
        self.secrets = sorted(merged, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def __call__(
        self, logger: Any, name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        return {k: self.scrub(v) for k, v in event.items()}


REDACTOR = Redactor()


class LibraryLogBridge(logging.Handler):
    """Hands the standard-library log records of the libraries we use (asyncpg's pool warns
    "Failed to restore the pool connection floor" with a traceback while the database is down)
    to structlog as one ``library.log`` event each, with the exception as one line.

    Without a handler Python prints such records raw to stderr, traceback and all, past the
    redaction and the JSON format an operator's log pipeline expects.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                fields["error"] = f"{type(exc).__name__}: {exc}"
            structlog.get_logger(record.name).log(record.levelno, "library.log", **fields)
        except Exception:  # noqa: BLE001 - a log line must never take the worker down
            self.handleError(record)


LIBRARY_BRIDGE = LibraryLogBridge(level=logging.WARNING)


def configure_logging(
    *,
    fmt: str = "auto",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Set up structlog for the process; call once at start-up, before the first event.

    The daemon logs to stdout, where systemd and Kubernetes collect it; the operator commands
    log to stderr so their own output stays clean to pipe.
    """
    REDACTOR.add(secrets)
    out = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(default=str)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if LIBRARY_BRIDGE not in root.handlers:
        root.addHandler(LIBRARY_BRIDGE)
