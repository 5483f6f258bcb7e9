from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamkit import (
    Client,
    ContentDeltaEvent,
    ErrorEvent,
    MessageEndEvent,
    from_events,
    from_sse_file,
)
from streamkit.errors import APIConnectionError, StreamTruncatedError
from streamkit.web import (
    UIMessageStreamEncoder,
    encode_sse_data,
    encode_sse_event,
    error_text,
)
from tests.web.assemble import encode_all, fold, summary_of_chunks, summary_of_message

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "fixtures").glob("*.sse"))

# Chunks whose `id` must be opened by their `-start` before they are used (ui-message-chunks.ts).
_OPENED_BY = {
    "text-delta": "text-start",
    "text-end": "text-start",
    "reasoning-delta": "reasoning-start",
    "reasoning-end": "reasoning-start",
}


def check_protocol(chunks: list[dict[str, Any]]) -> None:
    """The order the AI SDK's processUIMessageStream relies on."""
    assert chunks[0]["type"] == "start"
    assert chunks[1]["type"] == "start-step"
    assert chunks[-1]["type"] in ("finish", "error")
    assert sum(c["type"] in ("finish", "error") for c in chunks) == 1
    opened: set[tuple[str, str]] = set()
    tools: set[str] = set()
    for chunk in chunks:
        kind = chunk["type"]
        if kind in ("text-start", "reasoning-start"):
            opened.add((kind, chunk["id"]))
        elif kind in _OPENED_BY:
            assert (_OPENED_BY[kind], chunk["id"]) in opened, chunk
        if kind.endswith("-end") and kind != "finish-step":
            opened.discard((_OPENED_BY[kind], chunk["id"]))
        if kind == "tool-input-start":
            tools.add(chunk["toolCallId"])
        elif kind in ("tool-input-delta", "tool-input-available"):
            assert chunk["toolCallId"] in tools
    if chunks[-1]["type"] == "finish":
        assert not opened, "every text and reasoning part is ended before finish"
        assert chunks[-2]["type"] == "finish-step"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in FIXTURES])
def test_recorded_streams_encode_to_what_streamkit_folds(path: Path) -> None:
    chunks = encode_all(from_sse_file(path))
    check_protocol(chunks)
    response, error = fold(from_sse_file(path))
    summary = summary_of_chunks(chunks)
    errors = summary.pop("errors")
    assert summary == summary_of_message(response)
    if error is None:
        assert errors == []
        finish = chunks[-1]
        assert finish["messageMetadata"]["finishReason"] == response.finish_reason
    else:
        assert len(errors) == 1 and errors[0]


def test_an_in_stream_error_becomes_the_servers_reason() -> None:
    chunks = encode_all(from_sse_file(FIXTURES[0].parent / "error_mid_stream.sse"))
    assert chunks[-1]["type"] == "error"
    assert chunks[-1]["errorText"]
    assert "finish" not in [c["type"] for c in chunks]


def tools_body() -> dict[str, Any]:
    return {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            },
            {"type": "function", "function": {"name": "get_time", "parameters": {}}},
        ]
    }


OFFLINE_CASES = [
    pytest.param({}, id="text"),
    pytest.param({"thinking": {"type": "enabled"}}, id="thinking"),
    pytest.param(tools_body(), id="tools"),
    pytest.param({**tools_body(), "thinking": {"type": "enabled"}}, id="tools-thinking"),
    pytest.param(
        {
            "documents": [
                {"id": "doc-1", "data": {"title": "Paris", "text": "Paris is the capital."}},
                {"data": {"title": "Lyon", "text": "Lyon is on the Rhone.", "url": "https://x.y/"}},
            ]
        },
        id="documents",
    ),
]


@pytest.mark.parametrize("extra", OFFLINE_CASES)
def test_offline_replies_encode_to_what_streamkit_folds(extra: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    with Client.offline() as client:
        stream = client.chat_stream(model="command-a-03-2025", messages=messages, **extra)
        chunks = encode_all(stream)
        response, error = fold(stream)
    assert error is None
    check_protocol(chunks)
    summary = summary_of_chunks(chunks)
    assert summary.pop("errors") == []
    assert summary == summary_of_message(response)
    if "tools" in extra:
        assert [c["name"] for c in summary["tool_calls"]] == ["get_weather", "get_time"]
        assert chunks[-1]["finishReason"] == "tool-calls"
    if "thinking" in extra:
        assert summary["reasoning"]
    if "documents" in extra:
        assert summary["citations"]
        kinds = {c["type"] for c in chunks}
        assert "source-document" in kinds
    usage = chunks[-1]["messageMetadata"]["usage"]
    assert usage["billed_units"]["output_tokens"] > 0


def test_the_tool_plan_is_a_text_part_marked_as_the_plan() -> None:
    chunks = encode_all(from_sse_file(FIXTURES[0].parent / "tool_calls_two.sse"))
    start = next(c for c in chunks if c["type"] == "text-start")
    assert start["providerMetadata"] == {"cohere": {"toolPlan": True}}


def test_tool_input_streams_as_the_argument_fragments_arrive() -> None:
    chunks = encode_all(from_sse_file(FIXTURES[0].parent / "tool_call_pretty.sse"))
    deltas = "".join(c["inputTextDelta"] for c in chunks if c["type"] == "tool-input-delta")
    available = next(c for c in chunks if c["type"] == "tool-input-available")
    assert json.loads(deltas) == available["input"]


def test_a_call_without_arguments_has_empty_input() -> None:
    chunks = encode_all(from_sse_file(FIXTURES[0].parent / "tool_call_no_arguments.sse"))
    first = next(c for c in chunks if c["type"] == "tool-input-available")
    assert first["input"] == {}


def start_events() -> list[dict[str, Any]]:
    return [
        {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "tool-call-start",
            "index": 0,
            "delta": {
                "message": {
                    "tool_calls": {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                }
            },
        },
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": '{"a": '}}}},
        },
        {"type": "tool-call-end", "index": 0},
    ]


def test_invalid_tool_arguments_become_a_tool_input_error() -> None:
    encoder = UIMessageStreamEncoder()
    chunks = [c for e in from_events(start_events()).iterate() for c in encoder.encode(e)]
    assert chunks[-1]["type"] == "tool-input-error"
    assert chunks[-1]["input"] == '{"a": '


def test_the_start_chunk_carries_coheres_message_id() -> None:
    encoder = UIMessageStreamEncoder()
    chunks = [c for e in from_events(start_events()[:1]).iterate() for c in encoder.encode(e)]
    assert chunks == [{"type": "start", "messageId": "m1"}, {"type": "start-step"}]


def test_a_delta_without_its_content_start_opens_a_part() -> None:
    encoder = UIMessageStreamEncoder()
    event = ContentDeltaEvent.model_validate(
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}
    )
    assert [c["type"] for c in encoder.encode(event)] == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
    ]
    assert [c["type"] for c in encoder.finish()] == ["text-end", "finish-step", "finish"]
    assert encoder.ended and encoder.finish() == [] and encoder.encode(event) == []


def test_an_error_event_becomes_an_error_chunk_and_ends_the_stream() -> None:
    encoder = UIMessageStreamEncoder()
    assert encoder.encode(ErrorEvent(message="overloaded"))[-1] == {
        "type": "error",
        "errorText": "overloaded",
    }
    assert encoder.encode(MessageEndEvent()) == []
    assert encoder.fail(ValueError("x")) == []


@pytest.mark.parametrize(
    ("error", "text"),
    [
        pytest.param(
            StreamTruncatedError("the stream ended early"), "the stream ended early", id="streamkit"
        ),
        pytest.param(APIConnectionError("no answer"), "no answer", id="connection"),
        pytest.param(KeyError("secret internals"), "An error occurred.", id="unexpected"),
    ],
)
def test_failures_say_streamkits_message_and_hide_anything_else(
    error: Exception, text: str
) -> None:
    assert error_text(error) == text
    chunks = UIMessageStreamEncoder().fail(error)
    assert chunks[-1] == {"type": "error", "errorText": text}


def test_sse_framing() -> None:
    assert encode_sse_data({"type": "text-delta", "id": "t", "delta": "é\n"}) == (
        'data: {"type":"text-delta","id":"t","delta":"é\\n"}\n\n'.encode()
    )
    event = MessageEndEvent.model_validate(
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}
    )
    assert encode_sse_event(event) == (
        b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"COMPLETE"}}\n\n'
    )
