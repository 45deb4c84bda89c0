"""Logging: standard-library records from libraries (asyncpg, aiohttp) come out as one structlog
event each (no raw traceback on stderr, secrets redacted); lines held and written together."""

import io
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import structlog

from worker.logs import DEBUG, HELD_LINES, UtcStamp, configure_logging


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "wanted"), [("debug", True), ("info", False), ("error", False)])
def test_the_debug_switch_follows_the_level(level: str, wanted: bool) -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level=level, stream=out)
    assert DEBUG.wanted() is wanted
    structlog.get_logger("t").debug("probe")
    assert ("probe" in out.getvalue()) is wanted


@pytest.mark.usefixtures("restore_logging")
def test_a_library_warning_with_a_traceback_is_one_json_line() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", secrets=["hunter2-secret"], stream=out)
    try:
        raise ConnectionRefusedError(111, "Connect call failed hunter2-secret")
    except OSError:
        logging.getLogger("asyncpg.pool").warning("Failed to restore the pool", exc_info=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "library.log"
    assert event["logger"] == "asyncpg.pool"
    assert event["level"] == "warning"
    assert event["error"].startswith("ConnectionRefusedError:")
    assert "Traceback" not in lines[0]
    assert "hunter2-secret" not in lines[0]


@pytest.mark.usefixtures("restore_logging")
def test_library_chatter_below_warning_stays_out() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    configure_logging(fmt="json", stream=out)  # idempotent: one bridge, one line per record
    logging.getLogger("asyncpg").info("connected")
    logging.getLogger("aiohttp.client").error("boom")
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["boom"]


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.mark.usefixtures("restore_logging")
def test_lines_held_together_are_written_at_the_block_s_end_in_one_go() -> None:
    out = CountingStream()
    configure_logging(fmt="json", stream=out)
    log = structlog.get_logger("test")
    log.info("before")
    assert out.flushes == 1
    with HELD_LINES.together():
        for n in range(3):
            log.info("held", n=n)
        with HELD_LINES.together():  # a block inside another writes with the outer one
            log.info("held", n=3)
        assert out.getvalue().count("\n") == 1
    log.info("after")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e.get("n")) for e in events] == [
        ("before", None),
        *[("held", n) for n in range(4)],
        ("after", None),
    ]
    assert out.flushes == 3


@pytest.mark.usefixtures("restore_logging")
def test_held_lines_are_written_when_the_block_fails() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)

    def log_then_fail() -> None:
        with HELD_LINES.together():
            structlog.get_logger("test").info("held")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        log_then_fail()
    assert json.loads(out.getvalue())["event"] == "held"


@pytest.mark.usefixtures("restore_logging")
def test_the_daemon_s_stdout_is_looked_up_when_a_line_is_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(fmt="json")
    structlog.get_logger("test").info("to stdout")
    assert json.loads(capsys.readouterr().out)["event"] == "to stdout"


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_is_the_json_module_s_text_with_str_for_other_values() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    at = datetime(2026, 12, 5, 8, 45, tzinfo=UTC)
    structlog.get_logger("test").info("invoice.synced", at=at, outbox_id=7, name="Grüße")
    line = out.getvalue().rstrip("\n")
    event = json.loads(line)
    assert line == json.dumps(event)  # ", " and ": " between items, non-ASCII escaped
    assert event["at"] == str(at)


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_renders_every_kind_of_value_as_json_dumps_does() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    fields = {
        "duration_ms": 12.3,
        "nan": float("nan"),
        "inf": float("-inf"),
        "http_status": None,
        "recovered": False,
        "calls": [{"kind": "create", "http_status": 201}, (1, "two")],
        "amount": Decimal("1.10"),
        "text": 'quote " and \u2028',
    }
    structlog.get_logger("test").info("invoice.synced", **fields)
    line = out.getvalue().rstrip("\n")
    stamped = json.loads(line)
    event = {**fields, "event": "invoice.synced"}
    event |= {key: stamped[key] for key in ("level", "timestamp")}
    assert line == json.dumps(event, default=str)


@pytest.mark.parametrize(
    ("nanoseconds", "stamp"),
    [
        (1_764_924_300_123_456_789, "2025-12-05T08:45:00.123456Z"),
        (1_764_924_300_000_000_999, "2025-12-05T08:45:00Z"),  # no fraction, as isoformat()
        (1_764_924_300_000_001_000, "2025-12-05T08:45:00.000001Z"),
        (1_764_924_359_999_999_999, "2025-12-05T08:45:59.999999Z"),  # rounded down
        (951_782_400_000_000_000, "2000-02-29T00:00:00Z"),
    ],
)
def test_the_timestamp_is_structlog_s_iso_utc_text(nanoseconds: int, stamp: str) -> None:
    assert UtcStamp(lambda: nanoseconds)(None, "info", {})["timestamp"] == stamp


def test_the_timestamp_follows_the_clock_across_seconds() -> None:
    now = [1_764_924_300_500_000_000]
    stamper = UtcStamp(lambda: now[0])
    assert stamper(None, "info", {})["timestamp"] == "2025-12-05T08:45:00.500000Z"
    now[0] += 600_000_000
    assert stamper(None, "info", {})["timestamp"] == "2025-12-05T08:45:01.100000Z"
    now[0] += 86_400_000_000_000
    assert stamper(None, "info", {})["timestamp"] == "2025-12-06T08:45:01.100000Z"


def test_the_timestamp_reads_the_clock_datetime_now_reads() -> None:
    before = datetime.now(UTC)
    stamp = UtcStamp()(None, "info", {})["timestamp"]
    after = datetime.now(UTC)
    assert before <= datetime.fromisoformat(stamp) <= after
