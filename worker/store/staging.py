"""A bulk load's chunk: its rows written out as PostgreSQL's binary COPY of the staging table.

``invoice-sync enqueue`` writes each chunk in its parser processes, where the rows are made, so
the process that talks to PostgreSQL only hands the bytes on (``Outbox.enqueue_staged``): no
row crosses a process boundary as Python objects, and none is encoded again by the driver.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EnqueueRow = tuple[str, str, str, datetime | None, str | None]
"""One row of a bulk load: account, key, payload JSON, available_at, traceparent."""

STAGING_COLUMNS = ("account", "idempotency_key", "payload", "available_at", "traceparent")
# The binary COPY format (PostgreSQL's COPY documentation, "Binary Format"): a signature, no
# flags, no header extension; each row its field count, then each field's length (-1: NULL)
# and bytes; -1 as the last field count.
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
NULL = struct.pack("!i", -1)
_ROW_AND_LENGTH = struct.Struct("!hi").pack
_LENGTH = struct.Struct("!i").pack
_TIMESTAMP = struct.Struct("!iq").pack
# jsonb's binary form is a version byte (1) and the JSON text; timestamptz's is microseconds
# since 2000-01-01 UTC.
JSONB_VERSION = b"\x01"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Staged:
    """A chunk of rows as one binary COPY into the staging table, in the order given."""

    data: bytes
    rows: int
    repeats_a_key: bool
    """Whether two of its rows have the same (account, key): the plain INSERT would fail on
    them, so the load goes straight to the one that skips repeats."""


def staged(rows: Iterable[EnqueueRow]) -> Staged:
    """``rows`` (each valid: text PostgreSQL can hold, an aware ``available_at``) as a chunk."""
    parts = [HEADER]
    keys = set()
    count = 0
    for account, key, payload, available_at, traceparent in rows:
        count += 1
        keys.add((account, key))
        parts.append(_row(account, key, payload, available_at, traceparent))
    parts.append(TRAILER)
    return Staged(data=b"".join(parts), rows=count, repeats_a_key=len(keys) < count)


def _row(
    account: str, key: str, payload: str, available_at: datetime | None, traceparent: str | None
) -> bytes:
    account_bytes, key_bytes, body = account.encode(), key.encode(), payload.encode()
    return b"".join(
        (
            _ROW_AND_LENGTH(len(STAGING_COLUMNS), len(account_bytes)),
            account_bytes,
            _LENGTH(len(key_bytes)),
            key_bytes,
            _LENGTH(len(body) + 1),
            JSONB_VERSION,
            body,
            NULL
            if available_at is None
            else _TIMESTAMP(8, (available_at - PG_EPOCH) // MICROSECOND),
            NULL if traceparent is None else _text(traceparent),
        )
    )


def _text(value: str) -> bytes:
    data = value.encode()
    return _LENGTH(len(data)) + data
