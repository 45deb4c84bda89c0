"""Standard-library log records from libraries (asyncpg, aiohttp) come out as one structlog
event each: no raw traceback on stderr, secrets redacted."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from worker.logs import LIBRARY_BRIDGE, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    logging.getLogger().removeHandler(LIBRARY_BRIDGE)
    structlog.configure(**saved)


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
