"""A command line's bytes that are not UTF-8 (Python hands them over as lone surrogates, with
``surrogateescape``) stop at the parser with one line naming the argument and exit 2, before
any config or database is touched; a file's name alone may be any bytes."""

import pytest

from worker.cli import config as configured
from worker.cli import main as cli

# What `invoice-sync show $'\xff' $'\xfe'` gives ``sys.argv``.
BAD = b"\xff".decode("utf-8", "surrogateescape")
WORSE = b"ok\xfe".decode("utf-8", "surrogateescape")


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOICE_SYNC_CONFIG", raising=False)
    monkeypatch.setattr(configured, "configure_logging", lambda **_: None)


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["show", BAD, WORSE], "argument account: not UTF-8 text (character 1)"),
        (["show", "shop", WORSE], "argument key: not UTF-8 text (character 3)"),
        (["dlq", "list", "--account", BAD], "argument --account: not UTF-8 text"),
        (["dlq", "replay", "--reason", BAD], "argument --reason: not UTF-8 text"),
        (["cancel", BAD, "k", "--reason", WORSE], "argument account: not UTF-8 text"),
        (["cancel", "shop", "k", "--reason", WORSE], "argument --reason: not UTF-8 text"),
        (["accounts", "pause", BAD], "argument name: not UTF-8 text"),
        (["dlq", "replay", "7", "--note", BAD], "argument --note: not UTF-8 text"),
    ],
    ids=lambda case: case if isinstance(case, str) else None,  # xdist sends ids as UTF-8
)
def test_an_argument_that_is_not_utf8_is_one_line_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert named in err
    assert "database" not in err


def test_a_file_name_need_not_be_utf8() -> None:
    """File names reach the file system as they were given: any bytes are a valid name."""
    name = f"invoices-{BAD}.jsonl"
    parsed = [
        cli.build_parser().parse_args(["--config", name, "enqueue", name]),
        cli.build_parser().parse_args(["dlq", "replay", "7", "--payload", name]),
        cli.build_parser().parse_args(["accounts", "update", "shop", "--secret-file", name]),
    ]
    assert [parsed[0].config, parsed[0].file, parsed[1].payload, parsed[2].secret_file] == [
        name
    ] * 4
