"""``invoice-sync run`` freezes what start-up made (the settings of every account) before the
daemon runs, so full collections during a drain do not walk it again and again."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from worker.cli import run


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session keeps collecting as usual


def test_run_freezes_the_start_up_objects_before_the_daemon_runs(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    frozen_when_run: list[int] = []

    async def fake_worker(settings: Any, *, drain: bool) -> None:
        frozen_when_run.append(gc.get_freeze_count())

    monkeypatch.setattr(run, "run_worker", fake_worker)
    assert run.cmd_run(argparse.Namespace(drain=True), settings=object()) == 0  # type: ignore[arg-type]
    assert frozen_when_run
    assert frozen_when_run[0] > 0
