"""Loads ``sql/queries.sql`` (``-- name: x`` blocks) and the numbered migrations, once.

SQL lives in ``sql/`` at the top of the repository; the wheel carries it inside the package as
``worker/sql``, so both an installed package and a source checkout find it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{3})_(\w+)\.sql$")


def sql_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    packaged = package / "sql"  # the wheel carries sql/ inside the package
    if packaged.is_dir():
        return packaged
    return package.parent / "sql"


@cache
def queries() -> dict[str, str]:
    """Every named query, by name."""
    text = (sql_dir() / "queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    # split() with a group alternates: the preamble, then each name followed by its body.
    found = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    return {name: body.rstrip(";") for name, body in found.items()}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations in ``sql/migrations``, in version order."""
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if match is None:
            continue
        found.append(
            Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8"))
        )
    return tuple(found)
