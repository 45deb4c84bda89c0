"""How `status --watch` shows a refresh: rich's live view on a terminal when rich is installed
(the demo extra), one plain line per refresh otherwise (``_live_view`` is None)."""

import io
import sys

import pytest
from rich.live import Live

from worker.cli.watch import _live_view


class Terminal(io.StringIO):
    """Output that says it is a terminal, as a TTY does."""

    def isatty(self) -> bool:
        return True


def hide_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if rich were not installed: importing it, or any module of it, fails."""
    for name in [n for n in sys.modules if n == "rich" or n.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rich", None)


def test_a_terminal_gets_the_live_view_when_rich_is_installed() -> None:
    assert isinstance(_live_view(Terminal()), Live)


def test_a_pipe_gets_plain_lines() -> None:
    assert _live_view(io.StringIO()) is None


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_rich(monkeypatch)
    assert _live_view(Terminal()) is None
