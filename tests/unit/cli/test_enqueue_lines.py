"""``enqueue``'s fast path (``_usual_row``, orjson) takes only lines the full check
(``_checked_row``) would accept, and gives them the same row; every other line is read by the
full check, so its message is unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import invoice
from tests.hostile import bad_line, good_payload
from worker.cli.enqueue_line import BadLine, _checked_row, _has_exponent, _usual_row, parse_line

ACCOUNTS = frozenset({"shop"})
# 250 of these make a valid payload of about 85 KB, over the fast path's quarter of the limit.
DESCRIBED = {"name": "item", "description": "d" * 300, "quantity": 1, "unit_price": 1}
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def line(payload: object = None, **fields: object) -> str:
    record = {"account": "shop", "idempotency_key": "k", **fields}
    record["payload"] = invoice("k") if payload is None else payload
    return json.dumps(record, ensure_ascii=False)


def outcome(parse: object, text: str) -> tuple[object, ...]:
    """What ``parse`` makes of ``text``: the row with its payload as a value, or the message."""
    try:
        account, key, payload, available_at, traceparent = parse(text, ACCOUNTS)  # type: ignore[operator]
    except BadLine as exc:
        return ("bad", str(exc))
    return (account, key, json.loads(payload), available_at, traceparent)


def test_a_usual_line_takes_the_fast_path_with_the_full_checks_row() -> None:
    text = line(available_at="2026-07-01T09:00:00+02:00", traceparent=TRACE)
    row = _usual_row(text, ACCOUNTS)
    assert row is not None
    assert outcome(lambda t, a: row, text) == outcome(_checked_row, text)
    assert row[3] == datetime(2026, 7, 1, 7, tzinfo=UTC)


def test_a_usual_line_without_an_account_list_takes_the_fast_path() -> None:
    assert _usual_row(line(), None) is not None


@pytest.mark.parametrize(
    "text",
    [
        # Numbers the json module reads otherwise than orjson, or PostgreSQL writes out longer.
        line(invoice("k", provider_options={"n": 12345678901234567890123})),
        line(invoice("k", provider_options={"n": 1e300})),
        line(invoice("k", provider_options={"n": 1.5e-7})),
        '{"account": "shop", "idempotency_key": "k", "payload": {"n": NaN}}',
        '{"account": "shop", "idempotency_key": "k", "payload": {"n": 1e400}}',
        # Text PostgreSQL cannot hold, or orjson refuses.
        line(invoice("k", notes="a\x00b")),
        '{"account": "shop", "idempotency_key": "k\\ud800", "payload": {}}',
        '{"account": "shop", "idempotency_key": "k\\u0000", "payload": {}}',
        "\ufeff" + line(),
        line("[" * 300 + "]" * 300),
        # A large payload (valid): the full check counts its bytes.
        line(invoice("k", lines=[DESCRIBED] * 250)),
        # Bad lines.
        line(available_at=1700000000),
        line(available_at="soon"),
        line(traceparent="00-zz"),
        line(traceparent=7),
        line(extra=1),
        line(invoice("k", lines=[])),
        '{"account": "elsewhere", "idempotency_key": "k", "payload": {}}',
        '["shop", "k"]',
        "{not json",
    ],
)
def test_an_unusual_line_is_left_to_the_full_check(text: str) -> None:
    assert _usual_row(text, ACCOUNTS) is None
    assert outcome(parse_line, text) == outcome(_checked_row, text)


def test_a_large_integer_keeps_its_digits() -> None:
    # orjson would read it as a float; the full check keeps the integer.
    text = line(invoice("k", provider_options={"n": 12345678901234567890123}))
    _account, _key, payload, _at, _trace = parse_line(text, ACCOUNTS)
    assert "12345678901234567890123" in payload


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_parse_line_says_what_the_full_check_says(data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        record = {
            "account": "shop",
            "idempotency_key": "k",
            "payload": data.draw(good_payload("k")),
        }
        text = json.dumps(record, ensure_ascii=data.draw(st.booleans()))
    else:
        text = data.draw(bad_line("k"))
    assert outcome(parse_line, text) == outcome(_checked_row, text)


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b'{"n": 1e+16}', True),
        (b'{"n": [1.5E-7]}', True),
        (b'{"n": 5e-324}', True),
        (b'{"n": 123e4}', True),
        (b'{"id": "a9e", "n": 0.00001}', False),  # a digit before e, no digit after
        (b'{"name": "Service 2026", "n": 1000.0}', False),
    ],
)
def test_an_exponent_is_found_wherever_it_is(body: bytes, found: bool) -> None:
    assert _has_exponent(body) is found
