from __future__ import annotations

import json
from typing import Any

import pytest

from streamkit import Client
from streamkit.errors import InvalidUIMessageError, StreamkitError
from streamkit.web import ui_messages_to_cohere


def text(role: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"m-{role}", "role": role, "parts": [{"type": "text", "text": value}], **extra}


def test_system_user_and_assistant_text() -> None:
    body = {
        "id": "chat",
        "trigger": "submit-message",
        "messages": [
            text("system", "Be brief."),
            text("user", "Hi"),
            {
                "id": "a",
                "role": "assistant",
                "parts": [
                    {"type": "step-start"},
                    {"type": "reasoning", "text": "They said hi."},
                    {"type": "text", "text": "Hello", "state": "done"},
                    {"type": "text", "text": "!"},
                    {
                        "type": "source-document",
                        "sourceId": "d",
                        "mediaType": "text/plain",
                        "title": "t",
                    },
                    {"type": "data-citation", "id": "c", "data": {}},
                ],
            },
        ],
    }
    assert ui_messages_to_cohere(body) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert ui_messages_to_cohere(body, keep_reasoning=True)[-1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "They said hi."},
            {"type": "text", "text": "Hello!"},
        ],
    }


def tool_turn() -> dict[str, Any]:
    return {
        "id": "a",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {
                "type": "text",
                "text": "I will look it up.",
                "providerMetadata": {"cohere": {"toolPlan": True}},
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"temperature": 21},
            },
            {
                "type": "dynamic-tool",
                "toolName": "get_time",
                "toolCallId": "c2",
                "state": "output-error",
                "input": {},
                "errorText": "clock broke",
            },
            {"type": "tool-pending", "toolCallId": "c3", "state": "input-available", "input": {}},
            {"type": "step-start"},
            {"type": "text", "text": "It is 21 degrees."},
        ],
    }


def test_tool_results_become_tool_calls_and_tool_messages() -> None:
    converted = ui_messages_to_cohere([text("user", "Weather?"), tool_turn()])
    assert converted == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_plan": "I will look it up.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [{"type": "document", "document": {"data": '{"temperature": 21}'}}],
        },
        {
            "role": "tool",
            "tool_call_id": "c2",
            "content": [{"type": "document", "document": {"data": '{"error": "clock broke"}'}}],
        },
        {"role": "assistant", "content": "It is 21 degrees."},
    ]


def test_the_converted_conversation_is_accepted_by_the_offline_backend() -> None:
    messages = ui_messages_to_cohere(
        [text("system", "Be brief."), text("user", "Weather?"), tool_turn(), text("user", "Thanks")]
    )
    with Client.offline() as client:
        reply = client.chat_stream(model="command-a-03-2025", messages=messages).final_message()
    assert reply.text


def test_images_and_string_outputs() -> None:
    user = {
        "id": "u",
        "role": "user",
        "parts": [
            {"type": "text", "text": "What is this?"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAAA"},
        ],
    }
    assert ui_messages_to_cohere([user]) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    turn = {
        "id": "a",
        "role": "assistant",
        "parts": [
            {
                "type": "tool-f",
                "toolCallId": "c",
                "state": "output-available",
                "input": None,
                "output": "done",
            }
        ],
    }
    assert ui_messages_to_cohere([turn])[-1] == {
        "role": "tool",
        "tool_call_id": "c",
        "content": "done",
    }
    assert (
        json.loads(ui_messages_to_cohere([turn])[0]["tool_calls"][0]["function"]["arguments"]) == {}
    )


@pytest.mark.parametrize(
    ("messages", "where"),
    [
        pytest.param({"id": "x"}, "no 'messages'", id="no-messages"),
        pytest.param("hi", "must be a list", id="string"),
        pytest.param([1], "messages[0] must be an object", id="not-object"),
        pytest.param([{"role": "tool", "parts": []}], "messages[0].role", id="role"),
        pytest.param([{"role": "user"}], "messages[0].parts", id="no-parts"),
        pytest.param([{"role": "user", "parts": [{}]}], "messages[0].parts[0]", id="no-type"),
        pytest.param([{"role": "user", "parts": [{"type": "text"}]}], "parts[0].text", id="text"),
        pytest.param(
            [{"role": "user", "parts": [{"type": "reasoning", "text": "x"}]}],
            "'reasoning' is not a part of user",
            id="reasoning-in-user",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "parts": [{"type": "file", "mediaType": "application/pdf", "url": "u"}],
                }
            ],
            "not an image",
            id="pdf",
        ),
        pytest.param(
            [{"role": "assistant", "parts": [{"type": "tool-f", "state": "output-available"}]}],
            "toolCallId",
            id="no-call-id",
        ),
        pytest.param(
            [{"role": "assistant", "parts": [{"type": "dynamic-tool", "toolCallId": "c"}]}],
            "no tool name",
            id="no-tool-name",
        ),
        pytest.param(
            [{"role": "assistant", "parts": [{"type": "image"}]}],
            "not a part of assistant",
            id="unknown-part",
        ),
    ],
)
def test_invalid_input_is_a_one_line_typed_error(messages: Any, where: str) -> None:
    with pytest.raises(InvalidUIMessageError, match=None) as caught:
        ui_messages_to_cohere(messages)
    assert where in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, StreamkitError) and isinstance(caught.value, ValueError)
