"""Every command and subcommand's ``--help`` ends with a runnable example."""

import argparse
import re

import pytest

from worker.cli.main import build_parser, main


def every_parser(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += every_parser(child, (*path, name))
    return found


def test_every_command_and_subcommand_has_an_example() -> None:
    parsers = every_parser(build_parser())
    names = {" ".join(path) for path, _ in parsers}
    assert {"dlq list", "dlq show", "dlq replay", "dlq purge", "status", "accounts", "run"} <= names
    for path, parser in parsers:
        text = parser.format_help()
        assert re.search(r"^examples?:\n  invoice-sync ", text, re.MULTILINE), " ".join(path)


def test_a_usage_mistake_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dlq", "list", "--bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unrecognized arguments: --bogus" in err
