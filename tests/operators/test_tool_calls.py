from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable

from operators import (
    AssembledToolCall,
    ToolCallProgress,
    assemble_tool_calls,
    pending,
    tool_call_progress,
    tool_plan,
)
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent, from_sse_file, to_iterator
from streamkit.errors import ToolArgumentsError, UnexpectedEventError
from tests.operators.matrix import Case, Check, docstring_marbles, events, matrix
from tests.operators.matrix import run as run_marbles

FIXTURES = Path(__file__).parent.parent / "fixtures"


# --------------------------------------------------------------------------- helpers


def start(index: int = 0, id: str = "t0", name: str = "get_weather") -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {
            "type": "tool-call-start",
            "index": index,
            "delta": {
                "message": {
                    "tool_calls": {
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                }
            },
        }
    )


def delta(text: str, index: int = 0) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {
            "type": "tool-call-delta",
            "index": index,
            "delta": {"message": {"tool_calls": {"function": {"arguments": text}}}},
        }
    )


def end(index: int = 0) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python({"type": "tool-call-end", "index": index})


def plan(text: str) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": text}}}
    )


def run(events: list[ChatEvent], operator: Any) -> list[Any]:
    items: list[Any] = []
    errors: list[Exception] = []
    reactivex.from_iterable(events).pipe(operator).subscribe(items.append, errors.append)
    if errors:
        raise errors[0]
    return items


def progress(fragment: str, arguments: str, parsed: dict[str, Any]) -> ToolCallProgress:
    return ToolCallProgress(
        index=0, id="t0", name="get_weather", fragment=fragment, arguments=arguments, parsed=parsed
    )


# --------------------------------------------------------------------------- the matrix

# The docstrings' letters: s, d, f, e are start, two fragments and end of call 0.
CALL_EVENTS = {"s": start(), "d": delta('{"city": "Pa'), "f": delta('ris"}'), "e": end()}
CALL = AssembledToolCall(
    index=0,
    id="t0",
    name="get_weather",
    arguments='{"city": "Paris"}',
    parsed={"city": "Paris"},
)


def case(operator: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> Case:
    source, expected = docstring_marbles(operator)
    return Case(
        name=operator.__name__,
        operator=lambda _: operator(),
        source=source,
        expected=expected,
        inputs=inputs,
        outputs=outputs,
    )


CASES = [
    case(assemble_tool_calls, CALL_EVENTS, {"c": CALL}),
    case(
        tool_call_progress,
        CALL_EVENTS,
        {
            "p": progress("", "", {}),
            "q": progress('{"city": "Pa', '{"city": "Pa', {"city": "Pa"}),
            "r": progress('ris"}', '{"city": "Paris"}', {"city": "Paris"}),
        },
    ),
    case(
        tool_plan,
        {"p": plan("I will"), "q": plan(" look."), "x": start()},
        {"a": "I will", "b": " look."},
    ),
]


@pytest.mark.parametrize(("case", "check"), matrix(CASES))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


# --------------------------------------------------------------------------- assemble_tool_calls


def test_assemble_upstream_error_keeps_the_open_call() -> None:
    boom = ConnectionError("boom")
    seen = run_marbles(lambda _: assemble_tool_calls(), "-s-d-#", CALL_EVENTS, error=boom)
    assert seen.output == events("-----#", error=boom)
    assert pending(boom) == ((progress("", '{"city": "Pa', {"city": "Pa"}),),)


def test_assemble_upstream_error_with_nothing_open_attaches_nothing() -> None:
    boom = ConnectionError("boom")
    items: list[AssembledToolCall] = []
    errors: list[Exception] = []
    source: Observable[ChatEvent] = reactivex.concat(
        reactivex.of(start(), end()), reactivex.throw(boom)
    )
    source.pipe(assemble_tool_calls()).subscribe(items.append, errors.append)
    assert errors == [boom]
    assert pending(boom) == ()
    assert [c.arguments for c in items] == [""]


def test_assemble_unexpected_event_carries_the_open_call() -> None:
    with pytest.raises(UnexpectedEventError) as caught:
        run([start(), delta("{"), start()], assemble_tool_calls())
    assert pending(caught.value) == ((progress("", "{", {}),),)


def test_call_without_arguments_is_empty_text_and_empty_dict() -> None:
    [call] = run([start(name="now"), end()], assemble_tool_calls())
    assert (call.name, call.arguments, call.parsed) == ("now", "", {})
    assert call.to_tool_call().function.arguments == ""


def test_invalid_arguments_are_an_error_with_the_raw_text() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        run([start(), delta('{"city": Paris}'), end()], assemble_tool_calls())
    assert caught.value.arguments == '{"city": Paris}'
    assert caught.value.tool_call_id == "t0"
    assert caught.value.name == "get_weather"


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": -Infinity}'])
def test_non_json_constants_are_an_error(text: str) -> None:
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        run([start(), delta(text), end()], assemble_tool_calls())
    with pytest.raises(ToolArgumentsError):
        run([start(), delta(text), end()], tool_call_progress())


def test_arguments_that_are_not_an_object_are_an_error() -> None:
    with pytest.raises(ToolArgumentsError, match="not an object"):
        run([start(), delta("[1, 2]"), end()], assemble_tool_calls())


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([delta("{}"), end()], id="delta-without-start"),
        pytest.param([end()], id="end-without-start"),
        pytest.param([start(), start()], id="started-twice"),
        pytest.param([start(), end(), start()], id="started-again-after-end"),
    ],
)
def test_contradicting_events_are_unexpected(events: list[ChatEvent]) -> None:
    with pytest.raises(UnexpectedEventError):
        run(events, assemble_tool_calls())


def test_open_call_is_assembled_before_completion() -> None:
    [call] = run([start(), delta("{}")], assemble_tool_calls())
    assert call.parsed == {}


def test_open_truncated_call_fails_at_completion() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        run([start(), delta('{"a": 1')], assemble_tool_calls())
    assert caught.value.arguments == '{"a": 1'


def test_two_calls_and_other_events() -> None:
    events = [
        plan("I will look."),
        start(0, "a", "one"),
        delta('{"x": 1}', 0),
        end(0),
        start(1, "b", "two"),
        end(1),
    ]
    calls = run(events, assemble_tool_calls())
    assert [(c.index, c.id, c.name, c.parsed) for c in calls] == [
        (0, "a", "one", {"x": 1}),
        (1, "b", "two", {}),
    ]


@pytest.mark.parametrize(
    "fixture", ["tool_calls_two.sse", "tool_call_pretty.sse", "tool_call_no_arguments.sse"]
)
def test_fixtures_assemble_like_the_final_message(fixture: str) -> None:
    from streamkit import MessageAccumulator

    events = list(to_iterator(from_sse_file(FIXTURES / fixture)))
    calls = run(events, assemble_tool_calls())
    acc = MessageAccumulator()
    for event in events:
        acc.add(event)
    wire = acc.snapshot().message.tool_calls or []
    assert [c.to_tool_call() for c in calls] == [
        w.model_copy(update={"type": "function"}) for w in wire
    ]
    assert all(c.parsed == (json.loads(c.arguments) if c.arguments else {}) for c in calls)


# --------------------------------------------------------------------------- tool_call_progress


def test_progress_fails_early_on_invalid_json() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        run([start(), delta('{"a": tru'), delta("e, x"), end()], tool_call_progress())
    assert caught.value.arguments == '{"a": true, x'


def test_progress_fails_at_end_on_incomplete_json() -> None:
    with pytest.raises(ToolArgumentsError):
        run([start(), delta('{"a": 1'), end()], tool_call_progress())


def test_progress_rejects_arguments_that_are_not_an_object() -> None:
    with pytest.raises(ToolArgumentsError, match="not an object"):
        run([start(), delta("[1")], tool_call_progress())


def test_progress_of_a_call_without_arguments() -> None:
    assert run([start(), end()], tool_call_progress()) == [progress("", "", {})]


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([delta("{}")], id="delta-without-start"),
        pytest.param([end()], id="end-without-start"),
        pytest.param([start(), start()], id="started-twice"),
        pytest.param([start(), end(), start()], id="started-again-after-end"),
    ],
)
def test_progress_contradicting_events_are_unexpected(events: list[ChatEvent]) -> None:
    with pytest.raises(UnexpectedEventError):
        run(events, tool_call_progress())


# --------------------------------------------------------------------------- tool_plan


def test_tool_plan_skips_empty_pieces() -> None:
    assert run([plan(""), plan("a"), start(), end()], tool_plan()) == ["a"]


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
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


@st.composite
def documents(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_values) -> str:
    value = draw(values)
    return json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 2, 4])),
    )


@st.composite
def splits(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=150, deadline=None)
@given(st.data(), documents(json_objects))
def test_fragments_split_anywhere_assemble_to_the_same_arguments(
    data: st.DataObject, text: str
) -> None:
    fragments = data.draw(splits(text))
    events = [start(), *(delta(f) for f in fragments), end()]
    [call] = run(events, assemble_tool_calls())
    assert call.arguments == text
    assert call.parsed == json.loads(text)
    progress_items = run(events, tool_call_progress())
    assert progress_items[-1].parsed == json.loads(text)
    assert len(progress_items) == 1 + len(fragments)
