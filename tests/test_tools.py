"""Tools: schemas from type hints and docstrings, argument validation, the runner's decisions.

No I/O here: ``Tool`` and the runner's ``_Conversation`` core are pure (the HTTP side is in
``test_runner.py``).
"""

from __future__ import annotations

import enum
import typing
from typing import Any, Literal

import pydantic
import pytest

from streamkit import (
    CHAT_EVENT_ADAPTER,
    AssistantMessage,
    ChatResponse,
    MessageAccumulator,
    RunEvent,
    StepEndEvent,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolResultEvent,
    tool,
)
from streamkit._runner import _Conversation
from streamkit._tools import as_tools, tool_message
from streamkit.errors import ToolDefinitionError, ToolError


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Place(pydantic.BaseModel):
    city: str
    country: str | None = None


def forecast(
    place: Place, days: int = 1, unit: Unit = Unit.CELSIUS, *, hourly: bool = False
) -> str:
    """Forecast the weather
    for a place.

    Longer notes that are not the summary's first paragraph still describe it.

    Args:
        place: Where to forecast.
        days (int): How many days,
            from today on.
        unit: The temperature unit.
        hourly: Whether to give hourly values.

    Returns:
        The forecast.
    """
    return f"{place.city} {days} {unit.value} {hourly}"


def test_a_function_becomes_a_tool_with_a_schema_from_hints_and_docstring() -> None:
    made = Tool.from_function(forecast)
    assert made.name == "forecast"
    assert made.description == (
        "Forecast the weather for a place. Longer notes that are not the summary's first "
        "paragraph still describe it."
    )
    schema = made.parameters
    assert schema["type"] == "object" and schema["required"] == ["place"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert properties["days"] == {
        "default": 1,
        "description": "How many days, from today on.",
        "type": "integer",
    }
    assert properties["hourly"]["description"] == "Whether to give hourly values."
    assert properties["place"]["$ref"] == "#/$defs/Place"
    assert schema["$defs"]["Unit"]["enum"] == ["celsius", "fahrenheit"]
    assert made.to_param() == {
        "type": "function",
        "function": {"name": "forecast", "description": made.description, "parameters": schema},
    }


def test_arguments_are_validated_and_converted_to_the_hints_types() -> None:
    made = Tool.from_function(forecast)
    kwargs = made.validate('{"place": {"city": "Paris"}, "days": "3", "unit": "fahrenheit"}')
    assert kwargs == {
        "place": Place(city="Paris"),
        "days": 3,
        "unit": Unit.FAHRENHEIT,
        "hourly": False,
    }
    assert made.function(**kwargs) == "Paris 3 fahrenheit False"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        pytest.param("{", "the arguments are not valid JSON", id="not-json"),
        pytest.param("[1]", "the arguments must be a JSON object", id="not-an-object"),
        pytest.param(
            '{"days": 2}', "invalid arguments for forecast: place: Field required", id="missing"
        ),
        pytest.param(
            '{"place": {"city": "x"}, "color": 1}',
            "invalid arguments for forecast: color: Extra inputs are not permitted",
            id="unknown",
        ),
        pytest.param(
            '{"place": {"city": "x"}, "unit": "kelvin"}',
            "invalid arguments for forecast: unit: Input should be 'celsius' or 'fahrenheit'",
            id="enum",
        ),
    ],
)
def test_arguments_that_do_not_fit_raise_a_tool_error_for_the_model(
    arguments: str, problem: str
) -> None:
    with pytest.raises(ToolError) as caught:
        Tool.from_function(forecast).validate(arguments)
    assert str(caught.value).startswith(problem)


def test_no_arguments_is_an_empty_object() -> None:
    def now() -> str:
        """The time."""
        return "noon"

    made = Tool.from_function(now)
    assert made.validate("") == {} and made.validate(" {} ") == {}
    assert made.parameters == {"additionalProperties": False, "properties": {}, "type": "object"}


def test_an_explicit_schema_is_sent_as_given_and_the_signature_still_validates() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 5}}}

    def search(q, limit=3):  # type: ignore[no-untyped-def]  # no hints: any JSON value
        return [q] * limit

    made = Tool("search", "Search.", schema, search, timeout=2)
    assert made.parameters is schema and made.timeout == 2
    assert made.validate('{"q": ["anything"]}') == {"q": ["anything"], "limit": 3}
    with pytest.raises(ToolError, match="limit2: Extra inputs"):
        made.validate('{"q": "x", "limit2": 1}')


def test_the_decorator_makes_a_tool_that_stays_callable() -> None:
    @tool
    def shout(text: str) -> str:
        """Upper-case."""
        return text.upper()

    @tool(name="whisper", description="Lower-case.", timeout=1.5)
    async def quiet(text: Literal["A", "B"]) -> str:
        return text.lower()

    assert isinstance(shout, Tool) and shout("hey") == "HEY" and not shout.is_async
    assert (quiet.name, quiet.description, quiet.timeout, quiet.is_async) == (
        "whisper",
        "Lower-case.",
        1.5,
        True,
    )
    assert quiet.parameters["properties"]["text"]["enum"] == ["A", "B"]


def _varargs(*values: int) -> int:
    return sum(values)


def _kwargs(**values: int) -> int:
    return len(values)


def _positional(a: int, /) -> int:
    return a


def _ok(x: int) -> int:
    return x


def _private(_secret: int) -> int:
    return _secret


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        pytest.param(lambda: Tool.from_function(_varargs), r"\*args", id="varargs"),
        pytest.param(lambda: Tool.from_function(_kwargs), r"\*\*kwargs", id="kwargs"),
        pytest.param(lambda: Tool.from_function(_positional), "positional-only", id="positional"),
        pytest.param(lambda: Tool.from_function(_private), "starts with '_'", id="underscore"),
        pytest.param(lambda: Tool("bad name", "", {}, _ok), "tool name 'bad name'", id="name"),
        pytest.param(lambda: Tool("x", "", {}, 42), "not callable", id="not-callable"),  # type: ignore[arg-type]
        pytest.param(lambda: Tool("x", "", {}, _ok, timeout=0), "positive", id="timeout"),
        pytest.param(
            lambda: as_tools([Tool("f", "", {}, _ok), Tool("f", "", {}, _ok)]),
            "two tools are named 'f'",
            id="duplicate",
        ),
    ],
)
def test_tools_that_cannot_be_described_fail_when_defined(
    make: typing.Callable[[], object], problem: str
) -> None:
    with pytest.raises(ToolDefinitionError, match=problem):
        make()


def test_tool_messages_have_cohere_v2_shape() -> None:
    assert tool_message("c", [1, 2], None) == {
        "role": "tool",
        "tool_call_id": "c",
        "content": [{"type": "document", "document": {"data": {"result": [1, 2]}}}],
    }


# --------------------------------------------------------------------------- the runner's core


def _reply(*calls: tuple[str, str, str], plan: str = "Plan.") -> ChatResponse:
    tool_calls = [
        ToolCall(id=i, function=ToolCallFunction(name=n, arguments=a)) for i, n, a in calls
    ]
    message = AssistantMessage(tool_plan=plan, tool_calls=tool_calls or None)
    return ChatResponse(id="r", finish_reason="TOOL_CALL" if calls else "COMPLETE", message=message)


def test_the_core_decides_calls_results_and_when_to_stop() -> None:
    tools = as_tools([forecast])
    conv = _Conversation([{"role": "user", "content": "hi"}], tools, 2, 7.0)
    assert conv.request_messages() == [{"role": "user", "content": "hi"}]
    calls = conv.reply(
        _reply(
            ("a", "forecast", '{"place": {"city": "Oslo"}}'),
            ("b", "nope", ""),
            ("c", "forecast", "{"),
        )
    )
    assert [(c.tool_call_id, c.error is None, c.timeout) for c in calls] == [
        ("a", True, 7.0),
        ("b", False, None),
        ("c", False, None),
    ]
    # Results come in any order; the tool messages follow the calls' order.
    for call in reversed(calls):
        conv.result(call, "ok" if call.error is None else None, call.error, 0.1)
    end = conv.end_step()
    assert end.stop_reason is None and end.step == 1
    assert [m.get("tool_call_id") for m in end.messages] == [None, None, "a", "b", "c"]
    assert end.messages[1] == {
        "role": "assistant",
        "tool_plan": "Plan.",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in [
                ("a", "forecast", '{"place": {"city": "Oslo"}}'),
                ("b", "nope", ""),
                ("c", "forecast", "{"),
            ]
        ],
    }
    conv.request_messages()
    last = conv.reply(_reply(("d", "forecast", '{"place": {"city": "Rome"}}')))
    conv.result(last[0], {"x": 1}, None, 0.0)
    assert conv.end_step().stop_reason == "max_steps"


def test_an_answer_without_calls_ends_the_run_and_joins_the_conversation() -> None:
    conv = _Conversation([], {}, 5, None)
    conv.request_messages()
    assert conv.reply(ChatResponse(message=AssistantMessage())) == []
    end = conv.end_step()
    assert end.stop_reason == "answered" and end.is_final
    assert end.messages == [{"role": "assistant", "content": ""}]


# --------------------------------------------------------------------------- folding a run


def _step(step: int, text: str, *, final: bool) -> list[RunEvent]:
    wire: list[dict[str, Any]] = [
        {"type": "message-start", "id": f"m{step}", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text"}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}},
    ]
    events: list[RunEvent] = [CHAT_EVENT_ADAPTER.validate_python(w) for w in wire]
    events.append(ToolResultEvent(step=step, tool_call_id="c", name="t", arguments="", result=1))
    events.append(
        StepEndEvent(
            step=step,
            response=ChatResponse(),
            stop_reason="answered" if final else None,
        )
    )
    return events


def test_the_accumulator_folds_a_run_step_by_step_and_ends_with_the_last_reply() -> None:
    accumulator = MessageAccumulator()
    for event in [*_step(1, "first", final=False), *_step(2, "second", final=True)]:
        accumulator.add(event)
    snapshot = accumulator.snapshot()
    assert (snapshot.id, snapshot.text) == ("m2", "second")


def test_a_second_message_start_within_one_step_is_still_rejected() -> None:
    from streamkit.errors import UnexpectedEventError

    events = _step(1, "first", final=False)
    accumulator = MessageAccumulator()
    for event in events[:5]:
        accumulator.add(event)
    with pytest.raises(UnexpectedEventError, match="second message-start"):
        accumulator.add(events[0])


def test_every_run_event_member_is_handled_by_the_accumulator() -> None:
    members = typing.get_args(RunEvent)[1:]
    assert set(members) == {ToolResultEvent, StepEndEvent}
    accumulator = MessageAccumulator(strict=False)
    for event in _step(1, "x", final=True):
        accumulator.add(event)
    assert accumulator.snapshot().text == "x"


class Counter:
    """Counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, step: int = 1) -> int:
        self.calls += step
        return self.calls


def test_callable_objects_and_partials_are_tools_too() -> None:
    import functools

    counter = Tool.from_function(Counter(), name="count")
    assert counter.parameters["properties"]["step"]["type"] == "integer"
    assert counter.validate('{"step": "2"}') == {"step": 2}
    scaled = Tool.from_function(functools.partial(forecast, days=2), name="two_days")
    assert scaled.validate('{"place": {"city": "Oslo"}}')["days"] == 2
