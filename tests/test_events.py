"""The typed events: shapes as on the wire, unknowns kept, bad payloads rejected clearly."""

from __future__ import annotations

import typing
from typing import Any

import pydantic
import pytest

import streamkit
from streamkit import (
    CHAT_EVENT_ADAPTER,
    EVENT_TYPES,
    ChatEvent,
    ContentDeltaEvent,
    ContentStartEvent,
    MessageAccumulator,
    MessageEndEvent,
    MessageStartEvent,
    ToolCallStartEvent,
    UnknownEvent,
    event_to_dict,
)

WIRE: list[dict[str, Any]] = [
    {
        "id": "7d0c",
        "type": "message-start",
        "delta": {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        },
    },
    {
        "type": "content-start",
        "index": 0,
        "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}},
    },
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": " so"}}}},
    {"type": "content-end", "index": 0},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " I will"}}},
    {
        "type": "tool-call-start",
        "index": 0,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": "get_weather_k3j9x2m1q8zt",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            }
        },
    },
    {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city": "Par'}}}},
    },
    {"type": "tool-call-end", "index": 0},
    {
        "type": "content-delta",
        "index": 1,
        "delta": {"message": {"content": {"text": " Paris"}}},
        "logprobs": {"text": " Paris", "token_ids": [5], "logprobs": [-0.1]},
    },
    {
        "type": "citation-start",
        "index": 0,
        "delta": {
            "message": {
                "citations": {
                    "start": 0,
                    "end": 5,
                    "text": "Paris",
                    "sources": [
                        {
                            "type": "document",
                            "id": "doc:0",
                            "document": {"id": "doc:0", "title": "T"},
                        }
                    ],
                    "type": "TEXT_CONTENT",
                }
            }
        },
    },
    {"type": "citation-end", "index": 0},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "COMPLETE",
            "usage": {
                "billed_units": {"input_tokens": 9, "output_tokens": 41},
                "tokens": {"input_tokens": 215, "output_tokens": 41, "image_tokens": 258},
                "cached_tokens": 192,
            },
        },
    },
    {"type": "debug", "prompt": "<rendered>"},
]


@pytest.mark.parametrize(
    "wire", [pytest.param(w, id=f"{w['type']}-{i}") for i, w in enumerate(WIRE)]
)
def test_every_event_round_trips_exactly(wire: dict[str, Any]) -> None:
    event = CHAT_EVENT_ADAPTER.validate_python(wire)
    assert event.type == wire["type"]
    assert type(event).__name__ != "UnknownEvent"
    assert event_to_dict(event) == wire
    # JSON text and dicts decode to the same event.
    assert (
        CHAT_EVENT_ADAPTER.validate_json(pydantic.TypeAdapter(dict[str, Any]).dump_json(wire))
        == event
    )


def test_helpers_read_the_nested_fields() -> None:
    events = [CHAT_EVENT_ADAPTER.validate_python(w) for w in WIRE]
    thinking = events[2]
    assert isinstance(thinking, ContentDeltaEvent)
    assert (thinking.text, thinking.thinking) == (None, " so")
    assert isinstance(events[1], ContentStartEvent) and events[1].content_type == "thinking"
    assert isinstance(events[5], ToolCallStartEvent)
    assert events[5].tool_call.function.name == "get_weather"
    assert isinstance(events[11], MessageEndEvent)
    assert events[11].finish_reason == "COMPLETE"
    assert events[11].delta.usage is not None and events[11].delta.usage.cached_tokens == 192


def test_events_are_frozen() -> None:
    event = CHAT_EVENT_ADAPTER.validate_python(WIRE[0])
    assert isinstance(event, MessageStartEvent)
    with pytest.raises(pydantic.ValidationError):
        event.id = "changed"  # type: ignore[misc]


def test_unknown_fields_are_kept_and_dumped() -> None:
    wire = {"type": "content-end", "index": 0, "brand_new": {"x": [1, 2]}}
    event = CHAT_EVENT_ADAPTER.validate_python(wire)
    assert event_to_dict(event) == wire


def test_unknown_event_types_are_kept_whole() -> None:
    wire = {"type": "brand-new-event", "data": {"nested": True}, "n": 1}
    event = CHAT_EVENT_ADAPTER.validate_python(wire)
    assert isinstance(event, UnknownEvent)
    assert event.type == "brand-new-event"
    assert event.data == wire
    assert event_to_dict(event) == wire
    # Re-validating a typed UnknownEvent leaves it as it is.
    assert CHAT_EVENT_ADAPTER.validate_python(event) == event
    assert UnknownEvent(type="x", data={"type": "x", "k": 1}).data == {"type": "x", "k": 1}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("42", id="number"),
        pytest.param('"x"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("[]", id="array"),
        pytest.param("{}", id="no-type"),
        pytest.param('{"type": 5}', id="non-string-type"),
        pytest.param('{"type": "content-delta", "index": 0}', id="missing-delta"),
        pytest.param('{"type": "content-delta", "index": "zero", "delta": {}}', id="wrong-types"),
        pytest.param("{bad json", id="invalid-json"),
        pytest.param('{"type": "content-end", "index": 1e400}', id="huge-number"),
        pytest.param("[" * 10000 + "]" * 10000, id="deep-nesting"),
    ],
)
def test_bad_payloads_raise_validation_errors_never_crash(payload: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        CHAT_EVENT_ADAPTER.validate_json(payload)


def test_lone_surrogates_do_not_crash() -> None:
    try:
        event = CHAT_EVENT_ADAPTER.validate_json(
            '{"type": "content-delta", "index": 0, '
            '"delta": {"message": {"content": {"text": "\\ud800"}}}}'
        )
    except pydantic.ValidationError:
        return  # a typed error is fine
    assert isinstance(event, ContentDeltaEvent)


def union_members() -> list[type[Any]]:
    union = typing.get_args(ChatEvent)[0]
    return [typing.get_args(member)[0] for member in typing.get_args(union)]


def test_every_union_member_is_exported_and_known() -> None:
    members = union_members()
    for cls in members:
        assert getattr(streamkit, cls.__name__) is cls
        assert cls.__name__ in streamkit.__all__
    literal_types = {
        typing.get_args(cls.model_fields["type"].annotation)[0]
        for cls in members
        if cls is not UnknownEvent
    }
    assert literal_types == set(EVENT_TYPES)


def test_every_union_member_is_accepted_by_the_accumulator() -> None:
    accumulator = MessageAccumulator(strict=False)
    for wire in [*WIRE, {"type": "something-new"}, {"type": "error", "message": "x"}]:
        accumulator.add(CHAT_EVENT_ADAPTER.validate_python(wire))
    snapshot = accumulator.snapshot()
    assert snapshot.unknown_events[0].type == "something-new"
    assert snapshot.message.text == " Paris"
