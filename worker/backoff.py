"""Retry timing as pure functions of the attempt count and a random draw (River's
``NextRetryAt``): no sleeps in here, the delay is stored in ``available_at``."""

from __future__ import annotations

from collections.abc import Callable

# A provider's Retry-After is honoured, but a broken header must not park a row for a year.
MAX_RETRY_AFTER = 24 * 3600.0


def retry_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter spreads the retries of a burst of failures evenly instead of sending them back
    in synchronised waves (AWS Architecture Blog, "Exponential Backoff And Jitter").
    """
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return rand() * ceiling


def honour_retry_after(after: float | None, fallback: float) -> float:
    """A provider's Retry-After wins over our own backoff, clamped to a sane range."""
    if after is None:
        return fallback
    return min(max(after, 0.0), MAX_RETRY_AFTER)
