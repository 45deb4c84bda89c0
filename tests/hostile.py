"""Hypothesis strategies for hostile input: payloads the canonical invoice must refuse, and
JSON Lines records ``invoice-sync enqueue`` must refuse, with giant strings, wrong types, deep
nesting, NaN and Infinity, huge numbers, unicode oddities and NUL bytes.

Payloads are built as JSON *text*, so they can carry what Python's ``json`` would not write
(NaN, 10**400, nesting thousands deep). Every strategy here produces input that is invalid by
construction (never checked with the code under test), so a test may assert refusal.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from hypothesis import strategies as st

from tests.factories import invoice
from worker.invoice import Invoice

HOLE = "__HOSTILE__"
# Direction marks, zero-width and combining characters, emoji, CJK, a lone NUL now and then.
ODD = st.sampled_from(
    [
        "a",
        "Z",
        " ",
        "\u202e",
        "\u200b",
        "\ufeff",
        "\u0301",
        "\U0001f9fe",
        "\u4e2d",
        "\u00e9",
        "\\",
        '"',
        "\n",
        "\t",
        "\x00",
        "\u2028",
    ]
)


def giant(limit: int) -> st.SearchStrategy[str]:
    """A string just past ``limit`` characters, or a megabyte of them."""
    # Wrapped in "x" so that stripping whitespace cannot bring it back under the limit.
    near = st.text(ODD, min_size=limit, max_size=limit + 50).map(lambda t: f"x{t}x")
    return st.one_of(near, st.just("\u4e2d" * 1_000_000)).map(json.dumps)


def deep() -> st.SearchStrategy[str]:
    """Lists or objects nested past any sane depth (the engine's JSON parser stops at ~200)."""
    depth = st.integers(260, 5000)
    lists = depth.map(lambda n: "[" * n + "]" * n)
    objects = depth.map(lambda n: '{"a":' * n + "1" + "}" * n)
    return st.one_of(lists, objects)


NOT_A_NUMBER = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e400", '"12abc"', '""', '"1,000"', "[]", "{}"]
)
# Money and quantities hold at most 15 digits and are never negative.
BAD_AMOUNT = st.one_of(
    NOT_A_NUMBER,
    st.integers(max_value=-1).map(str),
    st.integers(16, 400).map(lambda k: "1" + "0" * k),
    st.integers(1, 200).map(lambda k: "1." + "1" * (k + 4)),  # more than 4 decimal places
)
NOT_AN_OBJECT = st.sampled_from(['"Acme"', "1", "[]", "[{}]", "true"])
NOT_A_STRING = st.sampled_from(["1", "[]", "{}", "true", "1e400"])
FIELD_BREAKERS: dict[str, st.SearchStrategy[str]] = {
    "number": st.one_of(giant(60), NOT_A_STRING),
    "notes": st.one_of(giant(5000), NOT_A_STRING),
    "currency": st.one_of(giant(3), st.sampled_from(['"inr"', '"RUPEES"', '"\u20b9"'])),
    "type": st.text(ODD, max_size=20).filter(lambda t: t.strip() not in _types()).map(json.dumps),
    "issue_date": st.sampled_from(['"2026-13-45"', '"yesterday"', "[]", "{}", '"\u0000"']),
    "customer": st.one_of(NOT_AN_OBJECT, giant(500).map(lambda s: '{"name":' + s + "}")),
    "lines": st.sampled_from(["[]", "{}", '"lines"', "[1, 2]", "[[]]", "null", '[{"name": "x"}]']),
    "lines.0.name": st.one_of(giant(500), NOT_A_STRING, st.just('""')),
    "lines.0.quantity": st.one_of(BAD_AMOUNT, st.sampled_from(["0", "null"])),
    "lines.0.unit_price": st.one_of(BAD_AMOUNT, st.just("null")),
    "discount": st.one_of(BAD_AMOUNT, st.just("null")),
    "amount_paid": BAD_AMOUNT,  # null is allowed here: "nothing paid yet"
    "cash_sale": st.sampled_from(['"yes"', "1", "[]"]),
    "provider_options": st.one_of(NOT_AN_OBJECT, deep().map(lambda d: '{"x":' + d + "}")),
}


def _types() -> set[str]:
    return set(Invoice.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]


def _with_hole(path: str) -> str:
    """A valid invoice as JSON text with ``path``'s value replaced by the ``HOLE`` marker."""
    doc: Any = invoice(number="HOSTILE-1")
    target = doc
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = HOLE
    return json.dumps(doc)


@st.composite
def broken_field(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(sorted(FIELD_BREAKERS)))
    return _with_hole(path).replace(json.dumps(HOLE), draw(FIELD_BREAKERS[path]))


@st.composite
def unknown_key(draw: st.DrawFn) -> str:
    key = draw(
        st.text(ODD, min_size=1, max_size=30).filter(lambda k: k not in Invoice.model_fields)
    )
    value = draw(st.one_of(st.sampled_from(["1", "null", '"x"', "[]"]), NOT_A_NUMBER, deep()))
    return json.dumps(invoice(number="HOSTILE-2"))[:-1] + f", {json.dumps(key)}: {value}}}"


NON_OBJECT = st.one_of(
    st.sampled_from(["null", "true", "0", '"invoice"', "[]", "1e400", "NaN", '"\\u0000"']),
    st.lists(st.integers(), max_size=3).map(json.dumps),
    giant(10),
    deep(),
)


def bad_payload() -> st.SearchStrategy[str]:
    """JSON text (or text PostgreSQL's jsonb refuses) that is never a valid canonical invoice."""
    return st.one_of(NON_OBJECT, broken_field(), unknown_key(), deep())


# Surrogates cannot be encoded as UTF-8 and PostgreSQL text refuses NUL.
NO_SURROGATE: tuple[Literal["Cs"]] = ("Cs",)
VALID_TEXT = st.text(
    st.characters(exclude_categories=NO_SURROGATE, exclude_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: bool(s.strip()))


@st.composite
def good_payload(draw: st.DrawFn, number: str) -> dict[str, Any]:
    """A valid invoice with unicode oddities where they are allowed (names, notes)."""
    doc = invoice(number=number, notes=draw(VALID_TEXT))
    doc["customer"] = {"name": draw(VALID_TEXT)}
    doc["lines"][0]["name"] = draw(VALID_TEXT)
    return doc


@st.composite
def bad_line(draw: st.DrawFn, key: str) -> str:
    """One JSON Lines record ``enqueue`` must refuse (never blank: blank lines are skipped)."""
    shell = '{"account": "shop", "idempotency_key": ' + json.dumps(key) + ', "payload": HOLE}'
    kinds = st.one_of(
        st.text(ODD, min_size=1, max_size=50).map(lambda t: "{" + t),  # not JSON
        NON_OBJECT,
        bad_payload().map(lambda p: shell.replace("HOLE", p)),
        st.sampled_from(
            [
                '{"account": "shop", "idempotency_key": 7, "payload": {}}',
                '{"account": "", "idempotency_key": "k", "payload": {}}',
                '{"account": "shop", "idempotency_key": "' + "k" * 201 + '", "payload": {}}',
                '{"account": "shop", "idempotency_key": "k\\u0000", "payload": %s}',
                '{"account": "shop", "idempotency_key": "k\\ud800", "payload": %s}',
                '{"account": "nope", "idempotency_key": "k", "payload": %s}',
                '{"account": "shop", "idempotency_key": "k", "payload": %s, "extra": 1}',
                '{"account": "shop", "idempotency_key": "k", "payload": %s, "available_at": "soon"}',
            ]
        ).map(lambda t: t.replace("%s", json.dumps(invoice())) if "%s" in t else t),
    )
    return draw(kinds)
