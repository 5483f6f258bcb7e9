"""The offline backend checks messages as the API does: 400 for what it refuses, 200 for the rest.

Every request goes over loopback through `streamkit.Client` (streamed and not), and the valid
shapes also through the official SDK, built from the SDK's own types.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from typing import Any

import cohere
import httpx
import pytest
from cohere.types import (
    AssistantMessageV2ContentOneItem,
    ChatMessageV2,
    Content,
    SystemMessageV2ContentOneItem,
    ToolContent,
)
from pydantic import BaseModel

from streamkit import Client, OfflineServer, to_iterator
from streamkit._request import to_jsonable
from streamkit.errors import BadRequestError

JSON = dict[str, Any]
KEY = "offline-key"
MODEL = "command-a-03-2025"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")

CALL_ID = "get_weather_k3j9x2m1q8zt"
USER: JSON = {"role": "user", "content": "Weather in Paris?"}
CALL: JSON = {
    "role": "assistant",
    "tool_plan": "I will look it up.",
    "tool_calls": [
        {
            "id": CALL_ID,
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ],
}
RESULT: JSON = {"role": "tool", "tool_call_id": CALL_ID, "content": '{"sky": "sunny"}'}


@pytest.fixture
def client(offline: OfflineServer) -> Iterator[Client]:
    with Client(KEY, base_url=offline.base_url, max_retries=0) as running:
        yield running


def _after_call(message: JSON) -> list[JSON]:
    return [USER, CALL, message]


def _with_call(**changes: Any) -> list[JSON]:
    return [USER, {**CALL, **changes}, RESULT]


def _with_call_part(**changes: Any) -> list[JSON]:
    call = {**CALL["tool_calls"][0], **changes}
    return [USER, {**CALL, "tool_calls": [call]}, RESULT]


# Each rule, with what the message must name: the message's index and the offending field.
INVALID: list[Any] = [
    # Roles.
    pytest.param([{"role": "bogus"}], "messages[0].role must be one of", id="unknown-role"),
    pytest.param(
        [{"role": "User", "content": "Hi"}], "messages[0].role must be one of", id="role-case"
    ),
    pytest.param([USER, {"role": "chatbot", "content": "Hi"}], "messages[1].role", id="v1-role"),
    pytest.param([{"content": "Hi"}], "messages[0] must be an object with a 'role'", id="no-role"),
    pytest.param(["Hi"], "messages[0] must be an object with a 'role'", id="not-an-object"),
    # Content each role requires.
    pytest.param(
        [{"role": "user"}], "messages[0].content is required in a user message", id="user-empty"
    ),
    pytest.param(
        [{"role": "user", "content": None}],
        "messages[0].content is required in a user message",
        id="user-null",
    ),
    pytest.param(
        [{"role": "system"}, USER],
        "messages[0].content is required in a system message",
        id="system-empty",
    ),
    pytest.param(
        [USER, {"role": "assistant"}],
        "messages[1].content or messages[1].tool_calls is required in an assistant message",
        id="assistant-empty",
    ),
    pytest.param(
        [USER, {"role": "assistant", "tool_plan": "I will look it up."}],
        "messages[1].content or messages[1].tool_calls is required",
        id="assistant-plan-only",
    ),
    pytest.param(
        [USER, {"role": "assistant", "tool_calls": []}],
        "messages[1].content or messages[1].tool_calls is required",
        id="assistant-no-calls",
    ),
    pytest.param(
        _after_call({"role": "tool", "content": "sunny"}),
        "messages[2].tool_call_id is required in a tool message",
        id="tool-no-call-id",
    ),
    pytest.param(
        _after_call({"role": "tool", "tool_call_id": CALL_ID}),
        "messages[2].content is required in a tool message",
        id="tool-no-content",
    ),
    # Content: a string or a list of typed parts.
    pytest.param(
        [{"role": "user", "content": {"type": "text", "text": "Hi"}}],
        "messages[0].content must be a string or a list of content parts "
        "('text', 'image_url' or 'document'), not an object",
        id="content-object",
    ),
    pytest.param(
        [{"role": "user", "content": 42}],
        "messages[0].content must be a string or a list of content parts",
        id="content-number",
    ),
    pytest.param(
        [{"role": "user", "content": ["Hi"]}],
        "messages[0].content[0] must be a content part with a 'type'",
        id="part-not-object",
    ),
    pytest.param(
        [{"role": "user", "content": [{"text": "Hi"}]}],
        "messages[0].content[0] must be a content part with a 'type'",
        id="part-no-type",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "audio", "audio": "…"}]}],
        'messages[0].content[0].type "audio" is not a content part of user messages',
        id="part-unknown",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "thinking", "thinking": "Hm."}]}],
        'messages[0].content[0].type "thinking" is not a content part of user messages',
        id="user-thinking",
    ),
    pytest.param(
        [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        'messages[0].content[0].type "image_url" is not a content part of system messages',
        id="system-image",
    ),
    pytest.param(
        [{"role": "system", "content": [{"type": "document", "document": {"data": {}}}]}, USER],
        'messages[0].content[0].type "document" is not a content part of system messages',
        id="system-document",
    ),
    pytest.param(
        [USER, {"role": "assistant", "content": [{"type": "image_url", "image_url": {}}]}],
        'messages[1].content[0].type "image_url" is not a content part of assistant messages',
        id="assistant-image",
    ),
    pytest.param(
        _after_call({**RESULT, "content": [{"type": "thinking", "thinking": "Hm."}]}),
        'messages[2].content[0].type "thinking" is not a content part of tool messages',
        id="tool-thinking",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "text"}]}],
        "messages[0].content[0].text is required: a string",
        id="text-missing",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "text", "text": ["Hi"]}]}],
        "messages[0].content[0].text is required: a string",
        id="text-not-string",
    ),
    pytest.param(
        [USER, {"role": "assistant", "content": [{"type": "thinking", "text": "Hm."}]}],
        "messages[1].content[0].thinking is required: a string",
        id="thinking-missing",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "image_url"}]}],
        "messages[0].content[0].image_url must be an object with a 'url' string",
        id="image-missing",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}],
        "messages[0].content[0].image_url must be an object with a 'url' string",
        id="image-url-bare",
    ),
    pytest.param(
        _after_call({**RESULT, "content": [{"type": "document", "document": {"text": "x"}}]}),
        "messages[2].content[0].document must be an object with a 'data' object or JSON string",
        id="document-no-data",
    ),
    pytest.param(
        _after_call({**RESULT, "content": [{"type": "document", "document": {"data": [1]}}]}),
        "messages[2].content[0].document must be an object with a 'data' object or JSON string",
        id="document-data-list",
    ),
    pytest.param(
        _after_call(
            {**RESULT, "content": [{"type": "document", "document": {"data": {}, "id": 7}}]}
        ),
        "messages[2].content[0].document.id must be a string",
        id="document-id-number",
    ),
    # An assistant's tool calls.
    pytest.param(
        _with_call(tool_calls={"id": CALL_ID}),
        "messages[1].tool_calls must be a list of tool calls",
        id="calls-not-list",
    ),
    pytest.param(
        [USER, {**CALL, "tool_calls": ["get_weather"]}],
        "messages[1].tool_calls[0] must be an object with an 'id'",
        id="call-not-object",
    ),
    pytest.param(
        _with_call_part(id=None),
        "messages[1].tool_calls[0].id is required: a string",
        id="call-no-id",
    ),
    pytest.param(
        _with_call_part(type="tool"),
        "messages[1].tool_calls[0].type must be 'function'",
        id="call-type",
    ),
    pytest.param(
        _with_call_part(function="get_weather"),
        "messages[1].tool_calls[0].function must be an object",
        id="call-function-string",
    ),
    pytest.param(
        _with_call_part(function={"name": "get_weather", "arguments": {"city": "Paris"}}),
        "messages[1].tool_calls[0].function.arguments must be a string",
        id="call-arguments-object",
    ),
    pytest.param(
        _with_call(tool_plan=["I will"]),
        "messages[1].tool_plan must be a string",
        id="plan-not-string",
    ),
    pytest.param(
        [USER, {"role": "assistant", "content": "Hi", "citations": {}}],
        "messages[1].citations must be a list of citations",
        id="citations-not-list",
    ),
    # A tool result answers a call made earlier in the conversation.
    pytest.param(
        [USER, RESULT],
        f'messages[1].tool_call_id "{CALL_ID}" answers no tool call made earlier in the '
        "conversation (no assistant message before it made a tool call)",
        id="result-without-call",
    ),
    pytest.param(
        _after_call({**RESULT, "tool_call_id": "get_weather_0"}),
        'messages[2].tool_call_id "get_weather_0" answers no tool call made earlier in the '
        f"conversation (the calls made so far: '{CALL_ID}')",
        id="result-wrong-id",
    ),
    pytest.param(
        [USER, RESULT, CALL],
        "messages[1].tool_call_id",
        id="result-before-call",
    ),
]


def _check_error(error: BadRequestError, complaint: str) -> None:
    assert type(error) is BadRequestError and error.status_code == 400
    # The API's error body: an id and a human-readable message.
    assert isinstance(error.body, dict) and set(error.body) == {"id", "message"}
    assert UUID.fullmatch(error.body["id"])
    assert error.body["message"].startswith("invalid request: ")
    assert complaint in error.body["message"]
    assert complaint in str(error)
    assert error.request_id is not None and re.fullmatch(r"[0-9a-f]{32}", error.request_id)


@pytest.mark.parametrize(("messages", "complaint"), INVALID)
def test_invalid_messages_are_refused_when_streaming(
    client: Client, messages: list[Any], complaint: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        list(to_iterator(client.chat_stream(model=MODEL, messages=messages)))
    _check_error(caught.value, complaint)


@pytest.mark.parametrize(("messages", "complaint"), INVALID)
def test_invalid_messages_are_refused_without_streaming(
    client: Client, messages: list[Any], complaint: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.chat(model=MODEL, messages=messages)
    _check_error(caught.value, complaint)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        pytest.param({"model": ""}, "'model' is required", id="model-empty"),
        pytest.param({"messages": []}, "'messages' is required", id="messages-empty"),
        pytest.param({"max_tokens": 0}, "'max_tokens'", id="max-tokens-zero"),
        pytest.param({"stop_sequences": "."}, "'stop_sequences'", id="stop-not-list"),
        pytest.param({"tools": [{"type": "function"}]}, "tools[0]", id="tool-no-name"),
        pytest.param({"documents": "Paris."}, "'documents'", id="documents-not-list"),
    ],
)
def test_the_other_fields_are_refused_the_same_way(
    client: Client, arguments: JSON, complaint: str
) -> None:
    request = {"model": MODEL, "messages": [USER], **arguments}
    with pytest.raises(BadRequestError) as caught:
        list(to_iterator(client.chat_stream(**request)))
    _check_error(caught.value, complaint)
    with pytest.raises(BadRequestError) as caught:
        client.chat(**request)
    _check_error(caught.value, complaint)


def test_the_official_sdk_reads_the_refusal_as_a_bad_request(offline: OfflineServer) -> None:
    with httpx.Client(timeout=10) as http:
        sdk = cohere.ClientV2(api_key=KEY, base_url=offline.base_url, httpx_client=http)
        messages: Any = [USER, RESULT]
        with pytest.raises(cohere.BadRequestError) as caught:
            sdk.chat(model=MODEL, messages=messages)
        assert caught.value.status_code == 400
        assert "messages[1].tool_call_id" in caught.value.body["message"]
        with pytest.raises(cohere.BadRequestError) as streamed:
            list(sdk.chat_stream(model=MODEL, messages=messages))
        assert streamed.value.body == {**caught.value.body, "id": streamed.value.body["id"]}


# --- Every valid shape -------------------------------------------------------------------------

DOCUMENT = cohere.Document(data={"title": "Paris", "text": "Sunny all week."}, id="doc-1")
TYPED_CALL = cohere.AssistantChatMessageV2(
    tool_plan="I will look it up.",
    tool_calls=[
        cohere.ToolCallV2(
            id=CALL_ID,
            function=cohere.ToolCallV2Function(name="get_weather", arguments='{"city": "Paris"}'),
        )
    ],
)
TYPED_USER = cohere.UserChatMessageV2(content="Weather in Paris?")

VALID: list[Any] = [
    pytest.param([TYPED_USER], id="user-string"),
    pytest.param(
        [
            cohere.UserChatMessageV2(
                content=[
                    cohere.TextContent(text="What is in this picture?"),
                    cohere.ImageUrlContent(
                        image_url=cohere.ImageUrl(url="https://example.com/cat.png")
                    ),
                    cohere.ImageUrlContent(
                        image_url=cohere.ImageUrl(
                            url="data:image/png;base64,iVBORw0KGgo=", detail="low"
                        )
                    ),
                ]
            )
        ],
        id="user-parts",
    ),
    pytest.param(
        [{"role": "user", "content": [{"type": "document", "document": {"data": {"a": 1}}}]}],
        id="user-document-part",
    ),
    pytest.param(
        [
            cohere.SystemChatMessageV2(content="Be brief."),
            cohere.SystemChatMessageV2(
                content=[cohere.TextSystemMessageV2ContentOneItem(text="Cite sources.")]
            ),
            TYPED_USER,
        ],
        id="system-string-and-parts",
    ),
    pytest.param(
        [
            TYPED_USER,
            cohere.AssistantChatMessageV2(content="Sunny."),
            cohere.UserChatMessageV2(content="And tomorrow?"),
        ],
        id="assistant-string",
    ),
    pytest.param(
        [
            TYPED_USER,
            cohere.AssistantChatMessageV2(
                content=[
                    cohere.ThinkingAssistantMessageV2ContentOneItem(thinking="Look it up."),
                    cohere.TextAssistantMessageV2ContentOneItem(text="Sunny."),
                ],
                citations=[
                    cohere.Citation(
                        start=0,
                        end=5,
                        text="Sunny",
                        sources=[cohere.DocumentSource(id="doc-1", document={"text": "Sunny"})],
                        type="TEXT_CONTENT",
                    )
                ],
            ),
            cohere.UserChatMessageV2(content="And tomorrow?"),
        ],
        id="assistant-parts-and-citations",
    ),
    pytest.param(
        [TYPED_USER, TYPED_CALL, cohere.ToolChatMessageV2(tool_call_id=CALL_ID, content="18 C")],
        id="tool-call-and-string-result",
    ),
    pytest.param(
        [
            TYPED_USER,
            # A reasoning model calls tools with no plan; `content=None` goes on the wire as null.
            cohere.AssistantChatMessageV2(
                content=None,
                tool_calls=[
                    cohere.ToolCallV2(id="a"),
                    cohere.ToolCallV2(id="b", function=cohere.ToolCallV2Function(name="now")),
                ],
            ),
            cohere.ToolChatMessageV2(
                tool_call_id="a",
                content=[
                    cohere.TextToolContent(text='{"sky": "sunny"}'),
                    cohere.DocumentToolContent(document=DOCUMENT),
                    cohere.DocumentToolContent(document=cohere.Document(data={"t": 18})),
                ],
            ),
            cohere.ToolChatMessageV2(tool_call_id="b", content="09:30"),
        ],
        id="tool-calls-and-part-results",
    ),
    pytest.param(
        # Cohere's tool-use guide sends each result as a document whose `data` is a JSON string.
        _after_call(
            {
                **RESULT,
                "content": [{"type": "document", "document": {"data": '{"sky": "sunny"}'}}],
            }
        ),
        id="tool-document-data-string",
    ),
    pytest.param(
        [
            TYPED_USER,
            TYPED_CALL,
            cohere.ToolChatMessageV2(tool_call_id=CALL_ID, content="18 C"),
            cohere.AssistantChatMessageV2(content="It is 18 C."),
            cohere.UserChatMessageV2(content="Thanks!"),
            cohere.AssistantChatMessageV2(content="You're welcome."),
            # An answer to a call made several turns before.
            cohere.ToolChatMessageV2(tool_call_id=CALL_ID, content="19 C"),
        ],
        id="result-for-an-older-call",
    ),
]

OTHER_FIELDS: JSON = {
    "documents": ["Paris is in France.", DOCUMENT, cohere.Document(data={"text": "Lyon."})],
    "tools": [
        cohere.ToolV2(
            function=cohere.ToolV2Function(
                name="get_weather",
                description="Weather for a city.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}},
            )
        )
    ],
    "thinking": cohere.Thinking(type="enabled", token_budget=20),
}


@pytest.mark.parametrize("messages", VALID)
@pytest.mark.parametrize("other", [pytest.param(False, id="alone"), pytest.param(True, id="all")])
def test_every_valid_shape_passes(
    offline: OfflineServer, client: Client, messages: list[Any], other: bool
) -> None:
    extra = OTHER_FIELDS if other else {}
    events = list(to_iterator(client.chat_stream(model=MODEL, messages=messages, **extra)))
    assert events[-1].type == "message-end"
    assert client.chat(model=MODEL, messages=messages, **extra).finish_reason
    with httpx.Client(timeout=10) as http:
        sdk = cohere.ClientV2(api_key=KEY, base_url=offline.base_url, httpx_client=http)
        assert sdk.chat(model=MODEL, messages=messages, **extra).finish_reason
        assert list(sdk.chat_stream(model=MODEL, messages=messages, **extra))[-1].type == (
            "message-end"
        )
    # The official SDK sent the messages as streamkit does.
    assert offline.requests[-1].body["messages"] == offline.requests[-3].body["messages"]


def test_the_valid_shapes_cover_every_role_and_part_the_sdk_defines() -> None:
    sent = {
        (message["role"], part["type"])
        for param in VALID
        for message in to_jsonable(param.values[0])
        if isinstance(message.get("content"), list)
        for part in message["content"]
    }
    sdk = {
        (role, kind)
        for role, union in (
            ("user", Content),
            ("assistant", AssistantMessageV2ContentOneItem),
            ("system", SystemMessageV2ContentOneItem),
            ("tool", ToolContent),
        )
        for kind in _literals(union, "type")
    }
    assert sdk <= sent
    roles = {to_jsonable(m)["role"] for param in VALID for m in param.values[0]}
    assert roles == _literals(ChatMessageV2, "role")


def _literals(annotation: Any, field: str) -> set[str]:
    """The values of a literal field across the members of one of the SDK's unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation.model_fields[field].default}
    members = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        members = members[:1]
    return {value for member in members for value in _literals(member, field)}
