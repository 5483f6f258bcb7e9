"""final_message() over recorded streams has the shape of the SDK's non-streaming response.

For every fixture, the reduced message is loaded into the official SDK's own
``V2ChatResponse`` type and dumped back: the SDK's type must hold every field we produce,
value for value. Independently, the message is checked against the stream itself with the
§4 mapping of cohere-v2-stream.md (joined deltas per block, joined plan, joined arguments,
citations in order, finish reason and usage from message-end).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from operators import final_message
from streamkit import ChatResponse, event_to_dict, from_sse_file, to_iterator
from streamkit.errors import ServerStreamError

cohere = pytest.importorskip("cohere")

FIXTURES = Path(__file__).parent.parent / "fixtures"
NAMES = sorted(p.name for p in FIXTURES.glob("*.sse"))


def reduce(name: str) -> ChatResponse:
    try:
        replies = list(to_iterator(from_sse_file(FIXTURES / name).pipe(final_message())))
    except ServerStreamError as error:
        # A finish_reason ERROR stream fails, with the whole message so far on the error.
        assert error.partial_message is not None
        return error.partial_message
    assert len(replies) == 1
    return replies[0]


def wire_events(name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    try:
        for event in to_iterator(from_sse_file(FIXTURES / name)):
            events.append(event_to_dict(event))
    except ServerStreamError:
        pass
    return events


def integers(value: Any) -> Any:
    """The SDK types usage counts as floats; the wire (and streamkit) has integers."""
    if isinstance(value, dict):
        return {k: integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@pytest.mark.parametrize("name", NAMES)
def test_the_sdks_response_type_holds_the_final_message(name: str) -> None:
    ours = reduce(name).to_dict()
    sdk = cohere.V2ChatResponse.model_validate(ours)
    dumped = sdk.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert integers(dumped) == ours


@pytest.mark.parametrize("name", NAMES)
def test_the_final_message_follows_the_streams_mapping(name: str) -> None:
    message = reduce(name).to_dict()
    events = wire_events(name)
    blocks: dict[int, dict[str, Any]] = {}
    plan = ""
    calls: dict[int, dict[str, Any]] = {}
    citations: list[dict[str, Any]] = []
    end: dict[str, Any] = {}
    for event in events:
        kind = event["type"]
        if kind == "message-start":
            assert message["id"] == event["id"]
        elif kind == "content-start":
            content = event["delta"]["message"]["content"]
            blocks[event["index"]] = {"type": content["type"], content["type"]: ""}
        elif kind == "content-delta":
            piece = event["delta"]["message"]["content"]
            block = blocks[event["index"]]
            key = "text" if "text" in piece else "thinking"
            block[key] += piece[key]
        elif kind == "tool-plan-delta":
            plan += event["delta"]["message"]["tool_plan"]
        elif kind == "tool-call-start":
            calls[event["index"]] = json.loads(json.dumps(event["delta"]["message"]["tool_calls"]))
        elif kind == "tool-call-delta":
            calls[event["index"]]["function"]["arguments"] += event["delta"]["message"][
                "tool_calls"
            ]["function"]["arguments"]
        elif kind == "citation-start":
            citations.append(event["delta"]["message"]["citations"])
        elif kind == "message-end":
            end = event["delta"]
    got = message["message"]
    assert got.get("content", []) == [blocks[i] for i in sorted(blocks)]
    assert got.get("tool_plan", "") == plan
    assert got.get("tool_calls", []) == [calls[i] for i in sorted(calls)]
    assert got.get("citations", []) == citations
    assert message.get("finish_reason") == end.get("finish_reason")
    if end.get("usage"):
        assert message["usage"] == end["usage"]
