"""Operator mistakes in `dlq` and `status --watch` flags: one line on stderr and exit 2, before
any database is touched (these run with no database configured at all)."""

import json
from pathlib import Path

import pytest

from worker.cli import config as configured
from worker.cli import main as cli


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOICE_SYNC_CONFIG", raising=False)
    monkeypatch.setattr(
        configured, "configure_logging", lambda **_: None
    )  # keep structlog global state


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["dlq"], "required: ACTION"),
        (
            ["dlq", "list", "--reason", "nope"],
            "'nope' is not a reason code; known: credits_expired",
        ),
        (["dlq", "list", "--since", "yesterday"], "neither a duration such as '2h' nor an ISO"),
        (["dlq", "list", "--limit", "0"], "--limit '0' is not a positive whole number"),
        (["dlq", "list", "--bogus"], "unrecognized arguments: --bogus"),
        (["dlq", "show", "abc"], "id 'abc' is not a positive whole number"),
        (["dlq", "replay"], "name ids or filters; --all replays every"),
        (["dlq", "replay", "7", "--reason", "rejected"], "give ids or filters"),
        (["dlq", "replay", "7", "8", "--payload", "x.json"], "give exactly one dead letter id"),
        (["dlq", "replay", "7", "--payload", "/nonexistent/x.json"], "cannot read /nonexistent"),
        (["dlq", "purge"], "the following arguments are required: --older-than"),
        (["dlq", "purge", "--older-than", "a while"], "--older-than: 'a while' is not a duration"),
        (["dlq", "purge", "--older-than", "30d", "--reason", "x"], "'x' is not a reason code"),
        (["dlq", "replay", "--since", "", "--dry-run"], "argument --since: empty"),
        (["dlq", "replay", "--account", "", "--dry-run"], "argument --account: empty"),
        (["dlq", "replay", "--reason", " ", "--dry-run"], "argument --reason: empty"),
        (["dlq", "list", "--account", ""], "argument --account: empty"),
        (["dlq", "purge", "--older-than", "1d", "--account", ""], "argument --account: empty"),
        (
            ["dlq", "list", "--since", "99999999999d"],
            "'99999999999d' reaches back before the year 1",
        ),
        (["dlq", "list", "--since", "9999999d"], "'9999999d' reaches back before the year 1"),
        (["dlq", "replay", "--since", "9999999d"], "'9999999d' reaches back before the year 1"),
        (["dlq", "list", "--since", "9999-12-31T23:59-01:00"], "out of the range of timestamps"),
        (["dlq", "purge", "--older-than", "9999999d"], "'9999999d' reaches back before the year 1"),
        (["status", "--watch", "--interval", "soon"], "--interval: 'soon' is not a duration"),
        (["status", "--watch", "--interval", "0"], "--interval must be more than zero"),
        (["status", "--until-drained"], "--until-drained only goes with --watch"),
        (["status", "--watch", "--json"], "--json is for a one-off status"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert needle in err


def test_a_corrected_payload_is_validated_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fix.json"
    bad.write_text('{"lines": [], "customer": {"name": "X"}, "unit_prise": 3}')
    assert run(["dlq", "replay", "7", "--payload", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is not a valid invoice: lines: List should have at least 1 item" in err
    assert "unit_prise: Extra inputs are not permitted" in err
    bad.write_text("{not json")
    assert run(["dlq", "replay", "7", "--payload", str(bad)]) == 2
    assert "is not a valid invoice" in capsys.readouterr().err


def good_invoice_text(options: str) -> str:
    from tests.factories import invoice  # noqa: PLC0415

    return json.dumps(invoice(number="FIX-1"))[:-1] + f', "provider_options": {options}}}'


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"number": "FIX-\xff"}', "not UTF-8"),
        (good_invoice_text('{"x": 1e400}').encode(), "out of a double's range"),
        (good_invoice_text('{"x": NaN}').encode(), "NaN"),
        (good_invoice_text('{"x": Infinity}').encode(), "Infinity"),
        (good_invoice_text('{"x": "a\\u0000b"}').encode(), "NUL"),
    ],
)
def test_a_corrected_payload_postgresql_cannot_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    """Refused while reading the file, before any database is needed: without the check these
    were a traceback, or PostgreSQL refusing the jsonb at replay time."""
    fix = tmp_path / "fix.json"
    fix.write_bytes(content)
    assert run(["dlq", "replay", "7", "--payload", str(fix)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert needle in err
    assert str(fix) in err
