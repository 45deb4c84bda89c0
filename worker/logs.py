"""Logging: structlog, JSON off a terminal, console on one, and secrets redacted on the way out.

Secrets should never be handed to a logger in the first place; the redaction processor is the
second line of defence, replacing any configured token or password wherever it appears.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
# How many leading characters of each secret index it for long strings (``Redactor._present``);
# fewer when a secret is shorter.
HEAD_WIDTH = 8


class Redactor:
    """A structlog processor that replaces known secret values in every string of an event.

    It runs on every event the process logs (one per invoice at info), so it keeps the work off
    what cannot hold a secret: a string shorter than the shortest secret is not searched, and
    an event with nothing to replace is passed on as it is. A string is searched secret by
    secret while there are fewer secrets than characters in it; past that (a fleet of accounts
    with a token each) by its windows of ``_width`` characters, looked up among the secrets'
    first ``_width`` characters, so the cost follows the string's length, not the fleet's size.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self._shortest = 0
        self._width = 0
        self._heads: dict[str, list[str]] = {}
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        merged = {s for s in (*self.secrets, *secrets) if s}
        # Longest first, so a token that contains another is replaced whole.
        self.secrets = sorted(merged, key=len, reverse=True)
        self._shortest = len(self.secrets[-1]) if self.secrets else 0
        self._width = min(self._shortest, HEAD_WIDTH)
        heads: dict[str, list[str]] = {}
        for secret in self.secrets:  # longest first within each head too
            heads.setdefault(secret[: self._width], []).append(secret)
        self._heads = heads

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) < self._shortest:
                return value
            for secret in self._present(value):
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def _present(self, value: str) -> list[str]:
        """The secrets to look for in ``value`` (a superset of those in it), longest first."""
        if len(self.secrets) <= len(value):
            return self.secrets
        width, heads = self._width, self._heads
        found = {
            secret
            for start in range(len(value) - width + 1)
            for secret in heads.get(value[start : start + width], ())
        }
        return sorted(found, key=len, reverse=True)

    def __call__(
        self, logger: Any, name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        for value in event.values():
            if isinstance(value, str) and len(value) < self._shortest:
                continue
            if isinstance(value, str | dict | list | tuple) and self.scrub(value) != value:
                return {k: self.scrub(v) for k, v in event.items()}
        return event


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


class HeldLines:
    """Where ``LineLogger`` puts lines while ``together()`` is open: written at its end, in
    order, one write and one flush for all of them."""

    def __init__(self) -> None:
        self._lines: list[tuple[TextIO | None, str]] | None = None

    def add(self, stream: TextIO | None, line: str) -> bool:
        """Hold ``line`` for ``stream`` if a block is open; False if not (write it now)."""
        if self._lines is None:
            return False
        self._lines.append((stream, line))
        return True

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Write the lines logged inside the block together at its end (or as it fails). The
        engine reports a flush's outcomes, one line per invoice, inside one: flushing the
        stream for each line was a system call per invoice."""
        if self._lines is not None:  # already inside one: its end writes these too
            yield
            return
        self._lines = []
        try:
            yield
        finally:
            lines, self._lines = self._lines, None
            for stream, run in itertools.groupby(lines, key=lambda held: held[0]):
                _write(stream, "".join(line for _stream, line in run))


HELD_LINES = HeldLines()


class LineLogger:
    """The end of the chain: each rendered event as one line on ``stream`` (None: whatever
    ``sys.stdout`` is when it is written, so a capture of stdout sees it), flushed at once as
    structlog's ``PrintLogger`` does, or later with the rest inside ``HELD_LINES.together()``."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        line = message + "\n"
        if not HELD_LINES.add(self._stream, line):
            _write(self._stream, line)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _write(stream: TextIO | None, text: str) -> None:
    out = stream if stream is not None else sys.stdout
    with _WRITE_LOCK:  # a library's thread may log too: lines are never interleaved
        out.write(text)
        out.flush()


_WRITE_LOCK = threading.Lock()


# One encoder for every line: json.dumps(..., default=str) builds a new one for each call, a
# microsecond of the five a line's JSON takes. The same text.
_LINE_ENCODER = json.JSONEncoder(default=str)
# And the C scanner behind it, made once: ``JSONEncoder.encode`` builds a new one for every
# line (another microsecond of a line's JSON). The same arguments as ``_LINE_ENCODER``'s,
# without its check for circular containers: an event never holds one (one would raise
# RecursionError rather than ValueError). None where the json module has no C speedups.
_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
_LINE_SCANNER: Any = (
    _C_ENCODER(
        None, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    if _C_ENCODER is not None
    else None
)


class UtcStamp:
    """A structlog processor: the event's ``timestamp`` as structlog's
    ``TimeStamper(fmt="iso", utc=True)`` writes it (``2026-12-05T08:45:00.123456Z``, no
    fraction on a whole second), by the same clock, in a third of its time: the text up to the
    second is made once a second, not from a new ``datetime`` for each line (one per invoice)."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._second = -1
        self._prefix = ""

    def __call__(
        self, logger: Any, name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # Microseconds rounded down, as datetime.now() rounds the same clock.
        second, micros = divmod(self._clock() // 1000, 1_000_000)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).isoformat()[:19]
            self._second = second
        event["timestamp"] = f"{self._prefix}.{micros:06d}Z" if micros else f"{self._prefix}Z"
        return event


def _render_json(event: Any, **_dumps_kw: Any) -> str:
    """``JSONRenderer``'s serializer: ``json.dumps(event, default=str)``'s text. (It passes its
    own ``default``, which this encoder's replaces.)"""
    if _LINE_SCANNER is not None and type(event) is dict:
        return "".join(_LINE_SCANNER(event, 0))
    return _LINE_ENCODER.encode(event)


class _DebugSwitch:
    """Whether debug events are written: ``wanted()`` is False once ``configure_logging`` set a
    higher level (until then structlog's default writes every level). Asked before a debug event
    on a per-request path, such as the adapters' answer line: a ``log.debug`` that the level
    filters out still binds a new logger through the module's lazy proxy first (2-4 µs a call,
    against a tenth of a microsecond for this)."""

    def __init__(self) -> None:
        self._on = True

    def set(self, level: int) -> None:
        self._on = level <= logging.DEBUG

    def wanted(self) -> bool:
        return self._on


DEBUG = _DebugSwitch()


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
    threshold = logging.getLevelNamesMapping()[level.upper()]
    DEBUG.set(threshold)
    out = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(serializer=_render_json)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            UtcStamp(),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_args: LineLogger(None if out is sys.stdout else out),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if LIBRARY_BRIDGE not in root.handlers:
        root.addHandler(LIBRARY_BRIDGE)
