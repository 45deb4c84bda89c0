"""The engine's per-invoice records (``worker.values.immutable``): read-only to mypy, as a
frozen dataclass is, but built without the frozen ``__setattr__`` per field, which cost about a
tenth of the engine's CPU per invoice."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from mypy import api

from worker.claims import AttemptFacts, Claimed, Resolution
from worker.outcome import Retry, Synced
from worker.policy import Decision
from worker.providers.base import Attempt

RECORDS = [Claimed, Resolution, AttemptFacts, Decision, Synced, Retry, Attempt]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_a_per_invoice_record_is_built_without_a_frozen_setattr(record: type) -> None:
    assert dataclasses.is_dataclass(record)
    assert record.__setattr__ is object.__setattr__
    assert "__slots__" in vars(record)


def test_records_compare_and_hash_by_value() -> None:
    one = Resolution(id=1, claim=2, kind="synced", provider_invoice_id="9")
    same = Resolution(id=1, claim=2, kind="synced", provider_invoice_id="9")
    assert one == same
    assert hash(one) == hash(same)
    assert len({one, same, dataclasses.replace(one, claim=3)}) == 2


def test_mypy_still_refuses_a_change_or_a_positional_field(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from worker.claims import Resolution

            r = Resolution(id=1, claim=1, kind="synced")
            r.id = 2
            Resolution(1, 1, "synced")
            """
        )
    )
    out, _err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(snippet)]
    )
    assert status == 1, out
    assert 'Property "id" defined in "Resolution" is read-only' in out
    assert 'Too many positional arguments for "Resolution"' in out
