"""The incremental partial-JSON parser, alone and against pydantic-core's partial mode."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamkit import MISSING, PartialJSONParser


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("", MISSING, id="nothing"),
        pytest.param("  ", MISSING, id="whitespace"),
        pytest.param("{", {}, id="open-object"),
        pytest.param('{"ci', {}, id="key-in-progress"),
        pytest.param('{"city"', {}, id="key-without-colon"),
        pytest.param('{"city": ', {}, id="key-without-value"),
        pytest.param('{"city": "', {"city": ""}, id="empty-string-in-progress"),
        pytest.param('{"city": "Pa', {"city": "Pa"}, id="string-in-progress"),
        pytest.param('{"n": 12', {}, id="number-in-progress-dropped"),
        pytest.param('{"n": 12,', {"n": 12}, id="number-ended-by-comma"),
        pytest.param('{"n": tr', {}, id="literal-in-progress-dropped"),
        pytest.param('{"n": true', {"n": True}, id="literal-complete"),
        pytest.param('{"a": [1, "x', {"a": [1, "x"]}, id="array-string"),
        pytest.param('{"a": [1, 2', {"a": [1]}, id="array-number-dropped"),
        pytest.param('{"a": {"b": [', {"a": {"b": []}}, id="nested-open"),
        pytest.param('{"s": "a\\', {"s": "a"}, id="escape-in-progress"),
        pytest.param('{"s": "a\\u00', {"s": "a"}, id="unicode-escape-in-progress"),
        pytest.param('{"s": "\\u00e9', {"s": "é"}, id="unicode-escape"),
        pytest.param('{"s": "\\ud83d', {"s": ""}, id="high-surrogate-waits"),
        pytest.param('{"s": "\\ud83d\\ude00', {"s": "😀"}, id="surrogate-pair"),
        pytest.param('"top', "top", id="top-level-string"),
        pytest.param("12", MISSING, id="top-level-number"),
        pytest.param("[1, [2, [3", [1, [2, []]], id="deep-arrays"),
    ],
)
def test_partial_json_snapshots(text: str, value: Any) -> None:
    parser = PartialJSONParser()
    parser.feed(text)
    assert parser.snapshot() == value


@pytest.mark.parametrize(
    "text", ['{"a" 1}', '{"a": 1 "b"}', "[1,]x", "{,", '{"a": tx', "01x", '"\\x"', "{} {}", "]"]
)
def test_partial_json_rejects_invalid_text(text: str) -> None:
    parser = PartialJSONParser()
    with pytest.raises(ValueError):
        parser.feed(text)
        parser.close()


def test_partial_json_close_rejects_an_incomplete_document() -> None:
    parser = PartialJSONParser()
    parser.feed('{"a": 1')
    with pytest.raises(ValueError, match="incomplete"):
        parser.close()


def test_partial_json_top_level_number_ends_with_close() -> None:
    parser = PartialJSONParser()
    parser.feed("-1.5e3")
    assert parser.close() == -1500.0


def test_snapshots_are_not_changed_by_later_fragments() -> None:
    parser = PartialJSONParser()
    parser.feed('{"a": [1, ')
    first = parser.snapshot()
    parser.feed('2], "b": "x')
    assert first == {"a": [1]}
    assert parser.snapshot() == {"a": [1, 2], "b": "x"}


# --------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    return json.dumps(
        draw(json_values),
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 2, 4])),
    )


@settings(max_examples=150, deadline=None)
@given(documents())
def test_every_prefix_parses_and_the_whole_equals_json_loads(text: str) -> None:
    parser = PartialJSONParser()
    for i, char in enumerate(text):
        parser.feed(char)
        prefix = PartialJSONParser()
        prefix.feed(text[: i + 1])
        assert prefix.snapshot() == parser.snapshot()
    assert parser.close() == json.loads(text)


# --------------------------------------------------------------------------- differential
#
# pydantic-core parses a prefix with ``from_json(prefix, allow_partial="trailing-strings")``.
# On every prefix of every document the two agree, except in two documented places:
#
# 1. A prefix with no value yet ("", whitespace, a top-level "nu" or "-"): pydantic-core
#    raises, ours gives MISSING.
# 2. A prefix ending inside a number: pydantic-core takes the digits so far as the number
#    ("-3" of "-300.5") or, where they are no number yet ("1.", "1e"), drops or refuses it;
#    ours leaves the number out until a delimiter ends it, because "12" may become "123":
#    a value shown early would later change instead of only growing.


def _last_number_dropped(value: Any) -> Any:
    """``value`` without its last scalar if that is a number, along the last-entry path."""
    if isinstance(value, dict) and value:
        key = list(value)[-1]
        inner = value[key]
        if _is_number(inner):
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _last_number_dropped(inner)}
    if isinstance(value, list) and value:
        if _is_number(value[-1]):
            return value[:-1]
        return [*value[:-1], _last_number_dropped(value[-1])]
    return MISSING if _is_number(value) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_prefix(prefix: str, ours: Any) -> None:
    """Assert ours agrees with pydantic-core on ``prefix``, or differs as documented."""
    try:
        theirs: Any = pydantic_core.from_json(prefix, allow_partial="trailing-strings")
    except ValueError:
        if ours is MISSING:
            return  # difference 1
        # Difference 2: pydantic-core refuses a number cut before its digits ("[1.", "[-").
        assert prefix[-1] in "0123456789+-.eE", prefix
        parser = PartialJSONParser()
        parser.feed(prefix[:-1])
        assert ours == parser.snapshot()
        return
    if ours == theirs:
        return
    assert prefix[-1] in "0123456789", (prefix, ours, theirs)  # difference 2
    assert ours == _last_number_dropped(theirs), (prefix, ours, theirs)


@settings(max_examples=200, deadline=None)
@given(documents())
@example('{"a": [1, 2.5, -3e5, true, null, "x\\"y\\u00e9\\ud83d\\ude00"], "b": {"c": []}}')
@example("-12.5e3")
def test_every_prefix_agrees_with_pydantic_core_partial_mode(text: str) -> None:
    parser = PartialJSONParser()
    check_prefix("", parser.snapshot())
    for i, char in enumerate(text):
        parser.feed(char)
        check_prefix(text[: i + 1], parser.snapshot())
    assert parser.close() == pydantic_core.from_json(text) == json.loads(text)


def test_the_documented_differences_do_happen() -> None:
    """The exceptions in check_prefix are real, not dead code that hides a regression."""
    parser = PartialJSONParser()
    parser.feed('{"n": 12')
    assert parser.snapshot() == {}
    assert pydantic_core.from_json('{"n": 12', allow_partial="trailing-strings") == {"n": 12}
    with pytest.raises(ValueError):
        pydantic_core.from_json("  ", allow_partial="trailing-strings")
