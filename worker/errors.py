"""The one exception root of invoice-sync.

Library exceptions (asyncpg, aiohttp, pydantic) are translated into these at the seam where they
occur, with ``raise ... from exc``, so callers catch our types and never a library's.

    InvoiceSyncError
    ├── ConfigError        bad settings: start-up stops with one line and exit code 2
    ├── StoreError         the database could not be reached or refused a statement
    │   └── MigrationError a migration failed or the schema is newer than this code
    ├── ProviderError      a provider adapter cannot work (misconfigured, not an invoice's fault)
    │   └── TransportError the HTTP exchange failed; ``sent`` says whether it may have arrived
    ├── InputError         an operator's input (a file, an argument) is unusable
    │   └── StaleSelectionError the rows a bulk action was confirmed for changed since
    └── BackgroundTaskError a background task the worker needs keeps crashing: exit 1
"""

from __future__ import annotations


class InvoiceSyncError(Exception):
    """Root of every error invoice-sync raises on purpose."""


class ConfigError(InvoiceSyncError):
    """The configuration is invalid; the message names the key."""


class StoreError(InvoiceSyncError):
    """The database could not be reached, or refused a statement."""


class MigrationError(StoreError):
    """A migration failed, or the database holds migrations this code does not know."""


class ProviderError(InvoiceSyncError):
    """A provider adapter cannot do its job for reasons outside any one invoice."""


class TransportError(ProviderError):
    """The HTTP exchange with a provider failed before a complete answer arrived.

    ``sent`` is False only when the request certainly never reached the provider (the
    connection was refused or never opened); otherwise the provider may have acted on it, and
    the attempt's outcome is unknown.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class InputError(InvoiceSyncError):
    """An operator's input is unusable; the message says where and why."""


class StaleSelectionError(InputError):
    """Some of the rows an operator confirmed a bulk action for were replayed or purged since
    the preview; nothing was done. ``confirmed`` and ``remaining`` are the two counts."""

    def __init__(self, *, confirmed: int, remaining: int) -> None:
        super().__init__(
            f"{confirmed} rows were confirmed and only {remaining} of them are still there"
        )
        self.confirmed = confirmed
        self.remaining = remaining


class BackgroundTaskError(InvoiceSyncError):
    """A background task the worker cannot run without (the flusher) kept crashing; the worker
    stops so that its service manager starts a fresh process."""
