from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st

import streamkit
from operators import accumulate, final_message, pair_citations, pending, snapshots
from streamkit import (
    CHAT_EVENT_ADAPTER,
    ChatEvent,
    ChatResponse,
    MessageAccumulator,
    OfflineServer,
    from_events,
    from_sse_file,
    to_iterator,
)
from streamkit.errors import ServerStreamError, StreamTruncatedError, UnexpectedEventError
from tests.operators.matrix import Case, Check, docstring_marbles, matrix

FIXTURES = Path(__file__).parent.parent / "fixtures"


# --------------------------------------------------------------------------- helpers


def event(payload: Mapping[str, Any]) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(dict(payload))


MESSAGE_START = {
    "type": "message-start",
    "id": "m1",
    "delta": {
        "message": {
            "role": "assistant",
            "content": [],
            "tool_plan": "",
            "tool_calls": [],
            "citations": [],
        }
    },
}
TEXT_START = {
    "type": "content-start",
    "index": 0,
    "delta": {"message": {"content": {"type": "text", "text": ""}}},
}


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {
        "type": "content-delta",
        "index": index,
        "delta": {"message": {"content": {"text": text}}},
    }


MESSAGE_END = {
    "type": "message-end",
    "delta": {
        "finish_reason": "COMPLETE",
        "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}},
    },
}

A, B, C = event(MESSAGE_START), event(TEXT_START), event(text_delta("Hi"))


def snapshot_after(*events: ChatEvent) -> ChatResponse:
    accumulator = MessageAccumulator()
    for item in events:
        accumulator.add(item)
    return accumulator.snapshot()


def collect(observable: reactivex.Observable[Any]) -> tuple[list[Any], list[Exception]]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, errors


# --------------------------------------------------------------------------- the matrix

# The docstrings' letters: a, b, c events; x, y, z the snapshots; m the final message.
CASES = [
    Case(
        name="snapshots",
        operator=lambda _: snapshots(),
        source=docstring_marbles(snapshots)[0],
        expected=docstring_marbles(snapshots)[1],
        inputs={"a": A, "b": B, "c": C},
        outputs={"x": snapshot_after(A), "y": snapshot_after(A, B), "z": snapshot_after(A, B, C)},
    ),
    Case(
        name="final_message",
        operator=lambda _: final_message(),
        source=docstring_marbles(final_message)[0],
        expected=docstring_marbles(final_message)[1],
        inputs={"a": A, "b": B, "c": C},
        outputs={"m": snapshot_after(A, B, C)},
        error_pending=(snapshot_after(A, B, C),),
    ),
]
ELSEWHERE = {
    ("final_message", "empty"): "an empty stream is an error: see test_final_message_empty_*",
}


@pytest.mark.parametrize(("case", "check"), matrix(CASES, elsewhere=ELSEWHERE))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


# --------------------------------------------------------------------------- snapshots


def test_snapshots_unexpected_event_is_an_error_with_the_partial_message() -> None:
    items, [error] = collect(reactivex.of(A, C).pipe(snapshots()))
    assert isinstance(error, UnexpectedEventError)
    assert error.partial_message is not None and error.partial_message.id == "m1"
    assert len(items) == 1


# --------------------------------------------------------------------------- final_message


def test_final_message_of_an_empty_stream_is_an_error() -> None:
    _, [error] = collect(reactivex.empty().pipe(final_message()))
    assert isinstance(error, StreamTruncatedError)
    assert error.partial_message == ChatResponse()


def test_final_message_immediate_error_attaches_nothing() -> None:
    boom = ConnectionError("boom")
    _, [error] = collect(reactivex.throw(boom).pipe(final_message()))
    assert error is boom and pending(boom) == ()


def test_final_message_unexpected_event_is_an_error() -> None:
    _, [error] = collect(reactivex.of(A, A).pipe(final_message()))
    assert isinstance(error, UnexpectedEventError)
    assert error.partial_message == snapshot_after(A)


def test_final_message_keeps_unknown_events() -> None:
    unknown = event({"type": "brand-new", "x": 1})
    [reply], _ = collect(reactivex.of(A, unknown).pipe(final_message()))
    assert reply.unknown_events == [unknown]


def test_accumulate_is_the_pure_fold() -> None:
    assert accumulate is streamkit.accumulate
    first = accumulate(None, A)
    second = accumulate(first, B)
    assert first == snapshot_after(A)
    assert second == snapshot_after(A, B)


@pytest.mark.parametrize(
    "fixture",
    sorted(p.name for p in FIXTURES.glob("*.sse") if p.name not in {"timeout.sse"}),
)
def test_final_message_over_the_fixtures(fixture: str) -> None:
    source = from_sse_file(FIXTURES / fixture)
    reply: list[ChatResponse] = []
    errors: list[Exception] = []
    try:
        for item in to_iterator(source.pipe(final_message())):
            reply.append(item)
    except Exception as caught:
        errors.append(caught)
    if errors:
        # The decoder fails broken or erroneous streams; the message so far rides along.
        [error] = errors
        assert isinstance(error, streamkit.errors.StreamError)
        assert pending(error) == (error.partial_message,)
        return
    events = list(to_iterator(from_sse_file(FIXTURES / fixture)))
    assert reply == [snapshot_after(*events)]


def test_server_stream_error_carries_the_message_with_its_finish_reason() -> None:
    with pytest.raises(ServerStreamError) as caught:
        list(to_iterator(from_sse_file(FIXTURES / "error_mid_stream.sse").pipe(final_message())))
    [partial] = pending(caught.value)
    assert partial.finish_reason == "ERROR"


# --------------------------------------------------------------------------- properties


@st.composite
def valid_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid V2 stream: tool plan and calls, text and thinking blocks, citations anywhere."""
    events: list[dict[str, Any]] = [MESSAGE_START]
    if draw(st.booleans()):
        for piece in draw(st.lists(st.text(max_size=4), max_size=3)):
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
        for index in range(draw(st.integers(0, 2))):
            call = {
                "id": f"c{index}",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            }
            events.append(
                {
                    "type": "tool-call-start",
                    "index": index,
                    "delta": {"message": {"tool_calls": call}},
                }
            )
            arguments = draw(st.sampled_from(["", json.dumps({"a": [1, "é"]}), '{"b": null}']))
            cuts = sorted(draw(st.sets(st.integers(0, len(arguments)), max_size=3)))
            bounds = [0, *cuts, len(arguments)]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                if hi > lo:
                    fragment = {"function": {"arguments": arguments[lo:hi]}}
                    events.append(
                        {
                            "type": "tool-call-delta",
                            "index": index,
                            "delta": {"message": {"tool_calls": fragment}},
                        }
                    )
            events.append({"type": "tool-call-end", "index": index})
    else:
        kinds = draw(st.lists(st.sampled_from(["text", "thinking"]), max_size=2))
        for index, kind in enumerate(kinds):
            content = {"type": kind, kind: ""}
            events.append(
                {
                    "type": "content-start",
                    "index": index,
                    "delta": {"message": {"content": content}},
                }
            )
            for piece in draw(st.lists(st.text(max_size=5), max_size=4)):
                delta: dict[str, Any] = {
                    "type": "content-delta",
                    "index": index,
                    "delta": {"message": {"content": {kind: piece}}},
                }
                if draw(st.booleans()):
                    delta["logprobs"] = {"token_ids": [1, 2], "logprobs": [-0.5, -0.1]}
                events.append(delta)
            events.append({"type": "content-end", "index": index})
    # Citations anywhere after message-start, numbered in the order they start.
    pairs: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(0, 3))):
        start_at = draw(st.integers(1, len(events)))
        end_at = draw(st.integers(start_at, len(events)))
        pairs.append((start_at, end_at))
    marked: list[Any] = list(events)
    for number, (_, end_at) in sorted(enumerate(pairs), key=lambda p: -p[1][1]):
        marked.insert(end_at, ("end", number))
    for number, (start_at, _) in sorted(enumerate(pairs), key=lambda p: -p[1][0]):
        position = next(i for i, e in enumerate(marked) if e == ("end", number))
        marked.insert(min(start_at, position), ("start", number))
    order = [e[1] for e in marked if isinstance(e, tuple) and e[0] == "start"]
    index_of = {number: index for index, number in enumerate(order)}
    out: list[dict[str, Any]] = []
    for item in marked:
        if isinstance(item, tuple):
            kind, number = item
            if kind == "start":
                citation = {
                    "start": 0,
                    "end": 2,
                    "text": "ab",
                    "sources": [],
                    "type": "TEXT_CONTENT",
                }
                out.append(
                    {
                        "type": "citation-start",
                        "index": index_of[number],
                        "delta": {"message": {"citations": citation}},
                    }
                )
            else:
                out.append({"type": "citation-end", "index": index_of[number]})
        else:
            out.append(item)
    out.append(
        {
            "type": "message-end",
            "delta": {
                "finish_reason": draw(st.sampled_from(["COMPLETE", "TOOL_CALL"])),
                "usage": {},
            },
        }
    )
    return out


@settings(max_examples=60, deadline=None)
@given(valid_streams())
def test_accumulating_any_prefix_never_raises(payloads: list[dict[str, Any]]) -> None:
    events = [event(p) for p in payloads]
    snapshot: ChatResponse | None = None
    accumulator = MessageAccumulator()
    for item in events:
        snapshot = accumulate(snapshot, item)  # the pure fold over this prefix
        accumulator.add(item)
        assert snapshot == accumulator.snapshot()
    for cut in (1, len(events) // 2, len(events)):
        [reply], errors = collect(reactivex.from_iterable(events[:cut]).pipe(final_message()))
        assert not errors
        assert reply == snapshot_after(*events[:cut])
        _, errors = collect(reactivex.from_iterable(events[:cut]).pipe(pair_citations()))
        assert not errors
    assert snapshot is not None and snapshot.finish_reason is not None


# --------------------------------------------------------------------------- conformance

USER = {"role": "user", "content": "How tall is the Eiffel Tower in Paris, and who built it?"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "The time now.", "parameters": {}},
    },
]
DOCUMENTS = [
    {"id": "doc:0", "data": {"title": "Eiffel Tower", "text": "The tower is 330 m tall."}},
    {"id": "doc:1", "data": {"title": "Gustave Eiffel", "text": "Eiffel's company built it."}},
]
TOOL_TURN = [
    USER,
    {
        "role": "assistant",
        "tool_plan": "I will check the weather.",
        "tool_calls": [
            {
                "id": "get_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "get_weather_1",
        "content": [{"type": "document", "document": {"data": '{"temperature_c": 18}'}}],
    },
]
REQUESTS: dict[str, dict[str, Any]] = {
    "text": {"messages": [USER]},
    "tools": {"messages": [USER], "tools": TOOLS},
    "tool-results": {"messages": TOOL_TURN, "tools": TOOLS},
    "documents": {"messages": [USER], "documents": DOCUMENTS},
    "thinking": {"messages": [USER], "thinking": {"type": "enabled"}},
    "thinking-tools": {"messages": [USER], "tools": TOOLS, "thinking": {"type": "enabled"}},
    "logprobs": {"messages": [USER], "logprobs": True},
    "max-tokens": {"messages": [USER], "max_tokens": 5},
}

# What each scripted reply holds, so a backend change cannot quietly make the kinds alike.
SHAPES: dict[str, tuple[str, set[str]]] = {
    "text": ("COMPLETE", {"content"}),
    "tools": ("TOOL_CALL", {"tool_plan", "tool_calls"}),
    "tool-results": ("COMPLETE", {"content", "citations"}),
    "documents": ("COMPLETE", {"content", "citations"}),
    "thinking": ("COMPLETE", {"content"}),
    "thinking-tools": ("TOOL_CALL", {"content", "tool_calls"}),
    "logprobs": ("COMPLETE", {"content"}),
    "max-tokens": ("MAX_TOKENS", {"content"}),
}


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_final_message_equals_the_non_streaming_reply(offline: OfflineServer, kind: str) -> None:
    request = REQUESTS[kind]
    with streamkit.Client(api_key="k", base_url=offline.base_url) as client:
        streamed = client.chat_stream(model="command-a-03-2025", **request).pipe(final_message())
        [reply] = list(to_iterator(streamed))
        whole = client.chat(model="command-a-03-2025", **request)
    got, want = reply.to_dict(), whole.to_dict()
    assert sorted(got) == sorted(want)
    for key in want:  # field by field, for a readable failure
        assert got[key] == want[key], key
    assert reply.unknown_events == []
    finish_reason, parts = SHAPES[kind]
    assert (got["finish_reason"], set(got["message"]) - {"role"}) == (finish_reason, parts)
    assert ("logprobs" in got) == (kind == "logprobs")
    assert bool(reply.message.thinking) == kind.startswith("thinking")


def test_final_message_over_from_events_matches_the_scripted_reply() -> None:
    from streamkit._replies import script_reply

    scripted = script_reply({"model": "m", "messages": [USER], "documents": DOCUMENTS})
    reply = from_events(scripted.stream_events()).pipe(final_message()).run()
    assert reply.to_dict() == scripted.response()
