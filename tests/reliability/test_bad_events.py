"""B: bad inputs at the event layer, over a real socket: typed errors, nothing lost.

Policy (README, "Reliability"): a malformed event ends the stream with
``MalformedEventError`` carrying the raw event and the partial message, and nothing after
it is read (a stream that sent one broken event cannot be trusted); an unknown ``type``
passes through as ``UnknownEvent``.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from typing import Any

import pytest

import operators
from streamkit import (
    ChatEvent,
    ChatResponse,
    Client,
    DebugEvent,
    MessageEndEvent,
    UnknownEvent,
    from_sse_bytes,
    to_iterator,
)
from streamkit import errors as E
from tests.reliability.support import KEY, MESSAGES, MODES, run_stream
from tests.scripted_server import Chunk, Finish, Headers, ScriptedServer, Wait, sse_events
from tests.test_client import content_start, delta, end, sse_ok, start, text_stream

pytestmark = pytest.mark.timeout(30)


def frame(payload: str, event: str | None = None) -> Chunk:
    """One SSE event with raw ``payload`` as its data line."""
    head = f"event: {event}\n" if event is not None else ""
    return Chunk(f"{head}data: {payload}\n\n".encode())


def bad_stream(bad: Chunk, gate: threading.Event) -> list[Any]:
    """message-start, content-start, one delta, the bad event, then the rest behind ``gate``.

    The gate is never opened: if the client kept reading after the bad event it would hang
    on the gate instead of failing, and the test would time out.
    """
    good = text_stream("Hello", " world")
    return [
        Headers(),
        *sse_events(good[:3], done=False),
        bad,
        Wait(gate),
        *sse_events(good[3:]),
        Finish(),
    ]


# ----------------------------------------------------------------------------- B1, B2


@pytest.mark.parametrize("mode", MODES)
def test_b1_malformed_json_ends_the_stream_with_the_raw_event(
    scripted: ScriptedServer, mode: str
) -> None:
    gate = threading.Event()
    raw = '{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "x"'
    scripted.enqueue(bad_stream(frame(raw, "content-delta"), gate))
    try:
        events, error = run_stream(mode, scripted.base_url)
        # The rest of the body was never read: the client hung up on the server.
        assert scripted.wait_for_request(1).disconnected.wait(5)
    finally:
        gate.set()
    # Exactly the events before the bad one; no invented message-start, nothing after it.
    assert [e.type for e in events] == ["message-start", "content-start", "content-delta"]
    assert isinstance(error, E.MalformedEventError)
    assert isinstance(error, E.ProtocolError)
    assert (error.event.event, error.event.data) == ("content-delta", raw)
    assert error.partial_message is not None
    assert error.partial_message.text == "Hello"
    assert error.partial_message.usage is None
    assert len(scripted.requests) == 1  # not retried: an event was delivered


@pytest.mark.parametrize("mode", MODES)
def test_b2_wrong_shape_carries_pydantic_details_and_the_raw_payload(
    scripted: ScriptedServer, mode: str
) -> None:
    gate = threading.Event()
    raw = '{"type": "content-delta", "index": 0}'
    scripted.enqueue(bad_stream(frame(raw, "content-delta"), gate))
    try:
        events, error = run_stream(mode, scripted.base_url)
    finally:
        gate.set()
    assert len(events) == 3
    assert isinstance(error, E.MalformedEventError)
    assert error.event.data == raw
    assert isinstance(error.details, list)
    problem = error.details[0]
    assert problem["type"] == "missing"
    assert problem["loc"][-1] == "delta"
    assert "input" not in problem  # the details name the problem, not the user's content
    assert "content-delta" in str(error)


# ----------------------------------------------------------------------------- B3


@pytest.mark.parametrize("mode", MODES)
def test_b3_unknown_type_passes_through_quietly_and_the_rest_is_intact(
    scripted: ScriptedServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    events = text_stream("Hi", " there")
    novel = {"type": "brand-new-event", "index": 7, "payload": {"nested": [1, 2]}}
    events.insert(3, novel)
    scripted.enqueue(sse_ok(events))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        received, error = run_stream(mode, scripted.base_url)
    assert error is None
    assert [e.type for e in received] == [e["type"] for e in events]
    unknown = received[3]
    assert isinstance(unknown, UnknownEvent)
    assert unknown.data == novel
    assert caught == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_b3_unknown_events_are_kept_on_the_final_message(scripted: ScriptedServer) -> None:
    events = text_stream("Hi")
    events.insert(2, {"type": "brand-new-event", "n": 1})
    scripted.enqueue(sse_ok(events))
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        final = list(to_iterator(stream.pipe(operators.final_message())))
    assert len(final) == 1
    assert final[0].text == "Hi"
    assert [u.data for u in final[0].unknown_events] == [{"type": "brand-new-event", "n": 1}]


# ----------------------------------------------------------------------------- B4, B10


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("42", id="number"),
        pytest.param('"x"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("[]", id="array"),
        pytest.param("true", id="bool"),
        pytest.param('{"delta": {}}', id="missing-type"),
        pytest.param('{"type": 5}', id="non-string-type"),
        pytest.param('{"type": null}', id="null-type"),
        pytest.param('{"type": ["content-delta"]}', id="list-type"),
        pytest.param("[" * 10_000 + "]" * 10_000, id="deep-array"),
        pytest.param('{"a":' * 5_000 + "1" + "}" * 5_000, id="deep-object"),
        pytest.param('{"type": "content-end", "index": 1e400}', id="huge-float"),
        pytest.param('{"type": "content-end", "index": NaN}', id="nan-token"),
        pytest.param('{"type": "content-end", "index": Infinity}', id="infinity-token"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_b4_b10_bad_json_values_are_malformed_never_a_crash(
    scripted: ScriptedServer, mode: str, payload: str
) -> None:
    gate = threading.Event()
    scripted.enqueue(bad_stream(frame(payload), gate))
    try:
        events, error = run_stream(mode, scripted.base_url)
    finally:
        gate.set()
    assert len(events) == 3
    assert type(error) is E.MalformedEventError, repr(error)
    assert error.event.data == payload
    assert error.partial_message is not None and error.partial_message.text == "Hello"


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        pytest.param(
            '{"type": "content-end", "index": ' + "9" * 4000 + "}",
            lambda event: event.index == int("9" * 4000),
            id="huge-int",
        ),
        pytest.param(
            json.dumps({"type": "brand-new", "n": 10**300, "x": 1e300}),
            lambda event: isinstance(event, UnknownEvent) and event.data["n"] == 10**300,
            id="huge-numbers-in-unknown",
        ),
        pytest.param(
            json.dumps({"type": "debug", "prompt": "["}).replace("[", "\\ud800"),
            lambda event: isinstance(event, DebugEvent),
            id="lone-surrogate",
        ),
        pytest.param(
            json.dumps({"type": "brand-new", "deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}),
            lambda event: isinstance(event, UnknownEvent),
            id="nested-in-unknown",
        ),
    ],
)
def test_b10_extreme_but_valid_values_give_a_valid_model_or_a_typed_error(
    scripted: ScriptedServer, payload: str, check: Any
) -> None:
    # "A typed error or a valid model": these are valid JSON, so we expect the model.
    events = text_stream("ok")
    scripted.enqueue(
        [Headers(), *sse_events(events[:2], done=False), frame(payload)]
        + [*sse_events(events[2:]), Finish()]
    )
    received, error = run_stream("iterator", scripted.base_url)
    if error is not None:
        assert isinstance(error, E.MalformedEventError)
        return
    assert check(received[2])
    assert received[-1].type == "message-end"


def test_b10_lone_surrogate_in_text_does_not_break_the_stream(scripted: ScriptedServer) -> None:
    raw = json.dumps(delta("a[b")).replace("[", "\\ud800")
    events = text_stream()
    scripted.enqueue(
        [Headers(), *sse_events(events[:2], done=False), frame(raw)]
        + [*sse_events(events[2:]), Finish()]
    )
    received, error = run_stream("iterator", scripted.base_url)
    if error is not None:  # a typed error is acceptable; a crash or a hang is not
        assert isinstance(error, E.MalformedEventError)
        return
    assert received[-1].type == "message-end"
    assert received[2].type == "content-delta"


# ----------------------------------------------------------------------------- B5, B6


def _through(
    scripted: ScriptedServer, events: list[dict[str, Any]], operator: Any
) -> tuple[list[Any], BaseException | None]:
    scripted.enqueue(sse_ok(events))
    items: list[Any] = []
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        try:
            for item in to_iterator(stream.pipe(operator)):
                items.append(item)
        except Exception as error:  # the test inspects it
            return items, error
    return items, None


def tool_start(index: int, name: str = "get_weather") -> dict[str, Any]:
    return {
        "type": "tool-call-start",
        "index": index,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": f"{name}_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            }
        },
    }


def tool_delta(index: int, arguments: str) -> dict[str, Any]:
    return {
        "type": "tool-call-delta",
        "index": index,
        "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}},
    }


CONTRADICTIONS = [
    pytest.param([start(), delta("early")], "content-delta", id="delta-before-start"),
    pytest.param(
        [start(), content_start(0), delta("x", index=1)], "content-delta", id="mismatched-index"
    ),
    pytest.param([start(), {"type": "citation-end", "index": 0}], "citation-end", id="citation"),
    pytest.param([start(), tool_delta(3, "{}")], "tool-call-delta", id="tool-delta-unknown-call"),
    pytest.param([start(), content_start(), start("m-2")], "message-start", id="second-start"),
]


@pytest.mark.parametrize(("events", "offender"), CONTRADICTIONS)
def test_b5_contradicting_events_reach_the_operators_as_typed_errors(
    scripted: ScriptedServer, events: list[dict[str, Any]], offender: str
) -> None:
    # The raw stream delivers them (the client accumulates best-effort)...
    scripted.enqueue(sse_ok([*events, end()]))
    raw, error = run_stream("iterator", scripted.base_url)
    assert error is None and [e.type for e in raw] == [e["type"] for e in [*events, end()]]
    # ...and the strict fold rejects the first contradiction, with the state before it.
    items, error = _through(scripted, [*events, end()], operators.snapshots())
    assert isinstance(error, E.UnexpectedEventError), repr(error)
    assert error.event.type == offender
    assert len(items) == len(events) - 1
    assert error.partial_message == items[-1]  # the state was not corrupted by the event


def test_b5_operators_keep_state_per_subscription_after_an_error(
    scripted: ScriptedServer,
) -> None:
    _, error = _through(scripted, [start(), delta("early"), end()], operators.final_message())
    assert isinstance(error, E.UnexpectedEventError)
    # A fresh subscription of the same operator starts clean.
    items, error = _through(scripted, text_stream("fine"), operators.final_message())
    assert error is None and items[0].text == "fine"


def test_b6_invalid_tool_arguments_keep_the_raw_text_and_the_parse_error(
    scripted: ScriptedServer,
) -> None:
    events = [
        start(),
        tool_start(0),
        tool_delta(0, '{"city": "Par'),
        tool_delta(0, "is"),
        {"type": "tool-call-end", "index": 0},
        end("TOOL_CALL"),
    ]
    items, error = _through(scripted, events, operators.assemble_tool_calls())
    assert items == []  # never silently turned into {}
    assert isinstance(error, E.ToolArgumentsError)
    assert error.arguments == '{"city": "Paris'
    assert error.name == "get_weather" and error.tool_call_id == "get_weather_0"
    assert isinstance(error.__cause__, ValueError)
    # The final message keeps the raw string as the non-streaming API would.
    finals, error = _through(scripted, events, operators.final_message())
    assert error is None
    calls = finals[0].message.tool_calls
    assert calls is not None and calls[0].function.arguments == '{"city": "Paris'


# ----------------------------------------------------------------------------- B7, B8, B9


@pytest.mark.parametrize("mode", MODES)
def test_b7_done_completes_and_what_follows_is_never_parsed(
    scripted: ScriptedServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    after = [frame("{not json"), frame(json.dumps(delta("ghost"))), frame("[DONE]")]
    scripted.enqueue([Headers(), *sse_events(text_stream("a")), *after, Finish()])
    with caplog.at_level(logging.DEBUG, logger="streamkit"):
        received, error = run_stream(mode, scripted.base_url)
    assert error is None
    assert received[-1].type == "message-end"
    assert all(getattr(e, "text", None) != "ghost" for e in received)
    assert [r for r in caplog.records if r.name.startswith("streamkit")] == []


def test_b7_done_is_not_json_parsed() -> None:
    # [DONE] would be a JSON decode error if it were parsed: the replay completes instead.
    body = b"".join(c.data for c in sse_events(text_stream("a")) if isinstance(c, Chunk))
    assert list(to_iterator(from_sse_bytes(body)))[-1].type == "message-end"


def test_b7_done_before_message_end_is_a_truncated_stream(scripted: ScriptedServer) -> None:
    # [DONE] says the server stopped; without message-end the reply is incomplete.
    scripted.enqueue(sse_ok(text_stream("cut", " short")[:4]))
    received, error = run_stream("iterator", scripted.base_url)
    assert len(received) == 4
    assert isinstance(error, E.StreamTruncatedError)
    assert error.partial_message is not None
    assert error.partial_message.text == "cut short"
    assert error.partial_message.usage is None


META_ONLY = [
    pytest.param(b"retry: 1000\n\n", id="retry"),
    pytest.param(b"id: 5\n\n", id="id"),
    pytest.param(b"\n\n\n\n", id="blank-lines"),
    pytest.param(b"event: content-delta\n\n", id="event-only"),
    pytest.param(b": keep-alive\n\n", id="comment"),
    pytest.param(b"id: 5\n\n\n\nretry: 10\n\n", id="mixed"),
    pytest.param(b"data:\n\n", id="empty-data"),
]


@pytest.mark.parametrize("block", META_ONLY)
def test_b8_meta_only_blocks_mid_stream_yield_nothing(
    scripted: ScriptedServer, block: bytes
) -> None:
    events = text_stream("a", "b")
    scripted.enqueue(
        [Headers(), *sse_events(events[:3], done=False), Chunk(block)]
        + [*sse_events(events[3:]), Finish()]
    )
    received, error = run_stream("iterator", scripted.base_url)
    assert error is None
    assert [e.type for e in received] == [e["type"] for e in events]


def data_only(events: list[dict[str, Any]]) -> list[Any]:
    return [frame(json.dumps(e)) for e in events] + [frame("[DONE]")]


def test_b9_with_and_without_event_lines_the_events_are_identical(
    scripted: ScriptedServer,
) -> None:
    events = text_stream("same", " events")
    events.insert(3, {"type": "brand-new-event", "x": 1})
    scripted.enqueue(sse_ok(events))
    scripted.enqueue([Headers(), *data_only(events), Finish()])
    # An event: line that disagrees with the JSON type loses: the JSON type is the truth.
    lying = [frame(json.dumps(e), "message") for e in events] + [frame("[DONE]")]
    scripted.enqueue([Headers(), *lying, Finish()])
    with_lines = run_stream("iterator", scripted.base_url)
    without = run_stream("iterator", scripted.base_url)
    rewritten = run_stream("iterator", scripted.base_url)
    assert with_lines[1] is None
    assert with_lines == without == rewritten
    assert isinstance(with_lines[0][-1], MessageEndEvent)


# ----------------------------------------------------------------------------- B: replay path


def test_bad_events_behave_the_same_in_a_replayed_recording() -> None:
    body = b"".join(
        c.data for c in sse_events(text_stream("Hello")[:3], done=False) if isinstance(c, Chunk)
    )
    body += b"data: {broken\n\n" + b"".join(
        c.data for c in sse_events(text_stream("x")[3:]) if isinstance(c, Chunk)
    )
    seen: list[ChatEvent] = []
    errors: list[Exception] = []
    from_sse_bytes(body).subscribe(seen.append, errors.append)
    assert [e.type for e in seen] == ["message-start", "content-start", "content-delta"]
    assert len(errors) == 1 and isinstance(errors[0], E.MalformedEventError)
    assert errors[0].event.data == "{broken"


def test_malformed_event_inside_a_pipeline_keeps_the_partial_message() -> None:
    body = b"".join(
        c.data for c in sse_events(text_stream("Hello")[:3], done=False) if isinstance(c, Chunk)
    )
    body += b"data: {broken\n\n"
    results: list[ChatResponse] = []
    errors: list[Exception] = []
    from_sse_bytes(body).pipe(operators.final_message()).subscribe(results.append, errors.append)
    assert results == []
    error = errors[0]
    assert isinstance(error, E.MalformedEventError)
    assert error.partial_message is not None and error.partial_message.text == "Hello"
