"""streamkit sends the same ``/v2/chat`` request body as the official ``cohere`` SDK.

For each set of arguments, both clients send through an ``httpx.MockTransport`` that keeps
the request; the parsed JSON bodies must be equal, type for type. Each argument set is also
given as the SDK's typed models: the SDK must send the same body for both spellings (which
checks the dict spelling here), and streamkit must send it too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import warnings
from collections.abc import Callable
from typing import Any, Literal

import cohere
import httpx
import pydantic
import pytest

import streamkit
from streamkit import RequestOptions, to_async_iterator, to_iterator

API_KEY = "sk-request-body-test-5f1e"
BASE_URL = "http://cohere.test"
MODEL = "command-a-03-2025"

_STREAM = (
    b'event: message-start\ndata: {"id":"9a1b","type":"message-start","delta":{"message":'
    b'{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}\n\n'
    b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"COMPLETE",'
    b'"usage":{"billed_units":{"input_tokens":1,"output_tokens":0},'
    b'"tokens":{"input_tokens":2,"output_tokens":0}}}}\n\n'
    b"data: [DONE]\n\n"
)
_RESPONSE = {
    "id": "9a1b",
    "finish_reason": "COMPLETE",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
    "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 1}},
}

Kwargs = dict[str, Any]


# ----------------------------------------------------------------------------- capturing


class Captured:
    """A MockTransport handler that keeps every request and answers with a valid reply."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if json.loads(request.content).get("stream"):
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=_STREAM
            )
        return httpx.Response(200, json=_RESPONSE)

    @property
    def only(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


def sdk_request(kwargs: Kwargs, *, stream: bool = True, **client: Any) -> httpx.Request:
    captured = Captured()
    with httpx.Client(transport=httpx.MockTransport(captured)) as http:
        sdk: Any = cohere.ClientV2(
            api_key=API_KEY,
            base_url=BASE_URL,
            httpx_client=http,
            # The SDK wraps chat/chat_stream to warn about response_format.schema; that wrapper
            # crashes on response_format=None (TypeError: argument of type 'NoneType' is not
            # iterable). Turning it off leaves the request untouched.
            log_warning_experimental_features=False,
            **client,
        )
        if stream:
            for _ in sdk.chat_stream(**kwargs):
                pass
        else:
            sdk.chat(**kwargs)
    return captured.only


def our_request(kwargs: Kwargs, *, stream: bool = True, **client: Any) -> httpx.Request:
    captured = Captured()
    with httpx.Client(transport=httpx.MockTransport(captured)) as http:
        with streamkit.Client(API_KEY, base_url=BASE_URL, http_client=http, **client) as ours:
            if stream:
                with to_iterator(ours.chat_stream(**kwargs)) as events:
                    for _ in events:
                        pass
            else:
                ours.chat(**kwargs)
    return captured.only


async def _our_async_request(kwargs: Kwargs) -> httpx.Request:
    captured = Captured()
    async with httpx.AsyncClient(transport=httpx.MockTransport(captured)) as http:
        async with streamkit.AsyncClient(API_KEY, base_url=BASE_URL, http_client=http) as ours:
            async with to_async_iterator(ours.chat_stream(**kwargs)) as events:
                async for _ in events:
                    pass
    return captured.only


def our_async_request(kwargs: Kwargs) -> httpx.Request:
    return asyncio.run(_our_async_request(kwargs))


def body(request: httpx.Request) -> Any:
    return typed(json.loads(request.content))


def typed(value: Any) -> Any:
    """``value`` with every leaf paired with its type, so ``1 != 1.0`` and ``1 != True``."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


# ----------------------------------------------------------------------------- arguments

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country, e.g. Paris, France"},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["location"],
}
ARGUMENTS = '{"location":"Paris, France","unit":"c"}'
CALL_ID = "get_weather_k3j9x2m1q8zt"
TOOL_OUTPUT = '{"temperature_c": 18, "condition": "sunny"}'
JSON_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city"],
}


def _dict_messages() -> list[Any]:
    return [
        {"role": "system", "content": "You are terse. Answer in one sentence."},
        {"role": "user", "content": "What's the weather in Paris? ☀️ Ça va?"},
        {
            "role": "assistant",
            "tool_plan": "I will look up the weather in Paris.",
            "tool_calls": [
                {
                    "id": CALL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": CALL_ID, "content": TOOL_OUTPUT},
    ]


def _typed_messages() -> list[Any]:
    return [
        cohere.SystemChatMessageV2(content="You are terse. Answer in one sentence."),
        cohere.UserChatMessageV2(content="What's the weather in Paris? ☀️ Ça va?"),
        cohere.AssistantChatMessageV2(
            tool_plan="I will look up the weather in Paris.",
            tool_calls=[
                cohere.ToolCallV2(
                    id=CALL_ID,
                    function=cohere.ToolCallV2Function(name="get_weather", arguments=ARGUMENTS),
                )
            ],
        ),
        cohere.ToolChatMessageV2(tool_call_id=CALL_ID, content=TOOL_OUTPUT),
    ]


def _dict_part_messages() -> list[Any]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "A small PNG; describe it."},
                {"type": "text", "text": "A red bicycle."},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "And the weather?"}]},
        {
            "role": "assistant",
            "tool_plan": "I will check the weather.",
            "tool_calls": [
                {
                    "id": CALL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ARGUMENTS},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": CALL_ID,
            "content": [
                {"type": "text", "text": TOOL_OUTPUT},
                {
                    "type": "document",
                    "document": {"data": {"forecast": "rain later"}, "id": "forecast-1"},
                },
            ],
        },
    ]


def _typed_part_messages() -> list[Any]:
    return [
        cohere.SystemChatMessageV2(
            content=[cohere.TextSystemMessageV2ContentOneItem(text="Be brief.")]
        ),
        cohere.UserChatMessageV2(
            content=[
                cohere.TextContent(text="What is in this picture?"),
                cohere.ImageUrlContent(
                    image_url=cohere.ImageUrl(
                        url="data:image/png;base64,iVBORw0KGgo=", detail="low"
                    )
                ),
            ]
        ),
        cohere.AssistantChatMessageV2(
            content=[
                cohere.ThinkingAssistantMessageV2ContentOneItem(
                    thinking="A small PNG; describe it."
                ),
                cohere.TextAssistantMessageV2ContentOneItem(text="A red bicycle."),
            ]
        ),
        cohere.UserChatMessageV2(content=[cohere.TextContent(text="And the weather?")]),
        cohere.AssistantChatMessageV2(
            tool_plan="I will check the weather.",
            tool_calls=[
                cohere.ToolCallV2(
                    id=CALL_ID,
                    function=cohere.ToolCallV2Function(name="get_weather", arguments=ARGUMENTS),
                )
            ],
        ),
        cohere.ToolChatMessageV2(
            tool_call_id=CALL_ID,
            content=[
                cohere.TextToolContent(text=TOOL_OUTPUT),
                cohere.DocumentToolContent(
                    document=cohere.Document(data={"forecast": "rain later"}, id="forecast-1")
                ),
            ],
        ),
    ]


def _dict_tools() -> list[Any]:
    return [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_PARAMETERS,
            },
        },
        {"type": "function", "function": {"name": "get_current_time", "parameters": {}}},
    ]


def _typed_tools() -> list[Any]:
    return [
        cohere.ToolV2(
            function=cohere.ToolV2Function(
                name="get_weather",
                description="Current weather for a city.",
                parameters=WEATHER_PARAMETERS,
            )
        ),
        cohere.ToolV2(function=cohere.ToolV2Function(name="get_current_time", parameters={})),
    ]


def _dict_documents() -> list[Any]:
    return [
        "The Eiffel Tower is 330 metres tall.",
        {"id": "louvre", "data": {"title": "Louvre", "text": "Closed on Tuesdays.", "year": 1793}},
        {"data": {"title": "Seine", "snippet": "777 km long"}},
    ]


def _typed_documents() -> list[Any]:
    return [
        "The Eiffel Tower is 330 metres tall.",
        cohere.Document(
            id="louvre", data={"title": "Louvre", "text": "Closed on Tuesdays.", "year": 1793}
        ),
        cohere.Document(data={"title": "Seine", "snippet": "777 km long"}),
    ]


def _every_parameter(
    messages: list[Any], tools: list[Any], documents: list[Any], typed_models: bool
) -> Kwargs:
    return {
        "model": MODEL,
        "messages": messages,
        "tools": tools,
        "strict_tools": True,
        "documents": documents,
        "citation_options": (
            cohere.CitationOptions(mode="ACCURATE") if typed_models else {"mode": "ACCURATE"}
        ),
        "response_format": (
            cohere.JsonObjectResponseFormatV2(json_schema=JSON_SCHEMA)
            if typed_models
            else {"type": "json_object", "json_schema": JSON_SCHEMA}
        ),
        "safety_mode": "STRICT",
        "max_tokens": 512,
        "stop_sequences": ["\n\n", "END"],
        "temperature": 0.3,
        "seed": 42,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.25,
        "k": 40,
        "p": 0.75,
        "logprobs": True,
        "tool_choice": "REQUIRED",
        "thinking": (
            cohere.Thinking(type="enabled", token_budget=2048)
            if typed_models
            else {"type": "enabled", "token_budget": 2048}
        ),
        "priority": 1,
    }


ALL_NONE: Kwargs = {
    name: None
    for name in (
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
    )
}


# (as plain JSON values, as the SDK's typed models); None where there is no typed spelling.
class _Sight(pydantic.BaseModel):
    name: str
    kind: Literal["museum", "park"] | None = None


class _City(pydantic.BaseModel):
    name: str
    sights: list[_Sight]


_CITY_SCHEMA = _City.model_json_schema()


CASES: list[Any] = [
    pytest.param(
        {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        lambda: {"model": MODEL, "messages": [cohere.UserChatMessageV2(content="Hi")]},
        id="minimal",
    ),
    pytest.param(
        {"model": MODEL, "messages": _dict_messages()},
        lambda: {"model": MODEL, "messages": _typed_messages()},
        id="every-role-content-as-str",
    ),
    pytest.param(
        {"model": MODEL, "messages": _dict_part_messages()},
        lambda: {"model": MODEL, "messages": _typed_part_messages()},
        id="every-role-content-as-parts",
    ),
    pytest.param(
        _every_parameter(_dict_messages(), _dict_tools(), _dict_documents(), False),
        lambda: _every_parameter(_typed_messages(), _typed_tools(), _typed_documents(), True),
        id="every-parameter",
    ),
    pytest.param(
        {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **ALL_NONE},
        None,
        id="every-parameter-explicit-none",
    ),
    pytest.param(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "A JSON city, please."}],
            "response_format": {"type": "json_object"},
            "thinking": {"type": "disabled"},
            "tool_choice": "NONE",
            "tools": _dict_tools(),
            "citation_options": {"mode": "OFF"},
            "safety_mode": "OFF",
            "documents": [],
            "stop_sequences": [],
            "temperature": 0,
            "p": 0.01,
            "logprobs": False,
            "strict_tools": False,
            "priority": 0,
        },
        lambda: {
            "model": MODEL,
            "messages": [cohere.UserChatMessageV2(content="A JSON city, please.")],
            "response_format": cohere.JsonObjectResponseFormatV2(),
            "thinking": cohere.Thinking(type="disabled"),
            "tool_choice": "NONE",
            "tools": _typed_tools(),
            "citation_options": cohere.CitationOptions(mode="OFF"),
            "safety_mode": "OFF",
            "documents": [],
            "stop_sequences": [],
            "temperature": 0,
            "p": 0.01,
            "logprobs": False,
            "strict_tools": False,
            "priority": 0,
        },
        id="falsy-values-and-other-variants",
    ),
    pytest.param(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "text"},
            "thinking": {"type": "enabled", "token_budget": None},
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "noop", "description": None, "parameters": {}},
                }
            ],
        },
        lambda: {
            "model": MODEL,
            "messages": [cohere.UserChatMessageV2(content="Hi")],
            "response_format": cohere.TextResponseFormatV2(),
            # A None set explicitly on a model is sent as null, like an explicit argument.
            "thinking": cohere.Thinking(type="enabled", token_budget=None),
            "tools": [
                cohere.ToolV2(
                    function=cohere.ToolV2Function(name="noop", description=None, parameters={})
                )
            ],
        },
        id="explicit-none-inside-models",
    ),
    pytest.param(
        {
            "model": MODEL,
            "messages": [
                {"role": "user", "content": "Hi", "name": "ana"},
                {"role": "user", "content": "Again"},
            ],
        },
        lambda: {
            "model": MODEL,
            # Undeclared fields on the SDK's models (extra="allow") are sent too.
            "messages": [
                cohere.UserChatMessageV2(content="Hi", name="ana"),
                {"role": "user", "content": "Again"},
            ],
        },
        id="extra-fields-and-mixed-spellings",
    ),
    pytest.param(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "A JSON city, please."}],
            "response_format": {"type": "json_object", "json_schema": _CITY_SCHEMA},
        },
        lambda: {
            "model": MODEL,
            "messages": [cohere.UserChatMessageV2(content="A JSON city, please.")],
            "response_format": cohere.JsonObjectResponseFormatV2(json_schema=_CITY_SCHEMA),
        },
        id="json-schema-response-format",
    ),
]

REQUEST_OPTIONS: RequestOptions = {
    "additional_body_parameters": {"return_prompt": True, "temperature": 0.9, "raw": {"a": [1]}},
    "additional_headers": {"X-Request-Source": "conformance"},
    "additional_query_parameters": {"trace": "on"},
}


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(("plain", "models"), CASES)
def test_stream_body_equals_the_sdks(plain: Kwargs, models: Callable[[], Kwargs] | None) -> None:
    theirs = sdk_request(plain)
    expected = body(theirs)
    ours = our_request(plain)
    assert body(ours) == expected
    # Byte for byte too: the same key order and the same compact UTF-8 encoding.
    assert ours.content == theirs.content
    assert body(our_async_request(plain)) == expected
    if models is not None:
        # The SDK itself sends the same for both spellings: the plain spelling is faithful.
        assert body(sdk_request(models())) == expected
        assert body(our_request(models())) == expected
        assert body(our_async_request(models())) == expected


@pytest.mark.parametrize(("plain", "models"), CASES)
def test_non_streaming_body_equals_the_sdks(
    plain: Kwargs, models: Callable[[], Kwargs] | None
) -> None:
    theirs = sdk_request(plain, stream=False)
    assert json.loads(theirs.content)["stream"] is False
    assert body(our_request(plain, stream=False)) == body(theirs)
    expected = body(theirs)
    if models is not None:
        assert body(our_request(models(), stream=False)) == expected


def test_parameters_are_the_sdks() -> None:
    """chat_stream takes exactly the SDK's parameters, so every one is in the tables above."""
    sdk: Any = cohere.ClientV2
    theirs = list(inspect.signature(sdk.chat_stream).parameters)
    ours = list(inspect.signature(streamkit.Client.chat_stream).parameters)
    assert ours == theirs
    every = _every_parameter([], [], [], False)
    assert set(every) | {"self", "request_options"} == set(theirs)
    assert set(ALL_NONE) | {"self", "model", "messages", "request_options"} == set(theirs)


def test_request_options_equal_the_sdks() -> None:
    kwargs: Kwargs = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.2,
        "request_options": REQUEST_OPTIONS,
    }
    theirs = sdk_request(kwargs)
    ours = our_request(kwargs)
    # Additional body parameters are merged over the arguments (temperature 0.9 wins).
    assert body(ours) == body(theirs)
    assert json.loads(ours.content)["temperature"] == 0.9
    assert ours.headers["X-Request-Source"] == theirs.headers["X-Request-Source"] == "conformance"
    assert ours.url == theirs.url == httpx.URL(f"{BASE_URL}/v2/chat?trace=on")


# ----------------------------------------------------------------------------- headers


def _requests_with_the_key() -> list[httpx.Request]:
    kwargs: Kwargs = {
        **_every_parameter(_dict_messages(), _dict_tools(), _dict_documents(), False),
        "request_options": REQUEST_OPTIONS,
    }
    return [our_request(kwargs), our_request(kwargs, stream=False), our_async_request(kwargs)]


@pytest.mark.parametrize(
    "index", [pytest.param(0, id="stream"), pytest.param(1, id="chat"), pytest.param(2, id="async")]
)
def test_the_key_is_only_in_the_authorization_header(index: int) -> None:
    request = _requests_with_the_key()[index]
    assert request.method == "POST"
    assert request.url.path == "/v2/chat"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    others = [
        value for name, value in request.headers.multi_items() if name.lower() != "authorization"
    ]
    assert not any(API_KEY in value for value in others)
    assert API_KEY not in str(request.url)
    assert API_KEY.encode() not in request.content


def test_authorization_and_content_type_equal_the_sdks() -> None:
    kwargs: Kwargs = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    theirs, ours = sdk_request(kwargs), our_request(kwargs)
    for name in ("Authorization", "Content-Type"):
        assert ours.headers[name] == theirs.headers[name]
    assert ours.url == theirs.url == httpx.URL(f"{BASE_URL}/v2/chat")
    assert ours.method == theirs.method == "POST"


def test_client_name_header_equals_the_sdks() -> None:
    kwargs: Kwargs = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    theirs = sdk_request(kwargs, client_name="my-app")
    ours = our_request(kwargs, client_name="my-app")
    assert ours.headers["X-Client-Name"] == theirs.headers["X-Client-Name"] == "my-app"


def test_body_is_utf8_json_like_the_sdks() -> None:
    """Non-ASCII goes out as UTF-8 (not ``\\u`` escapes); both bodies parse the same."""
    kwargs: Kwargs = {"model": MODEL, "messages": [{"role": "user", "content": "Ça va? 喫茶店 ☕"}]}
    theirs, ours = sdk_request(kwargs), our_request(kwargs)
    assert "Ça va? 喫茶店 ☕".encode() in ours.content
    assert "Ça va? 喫茶店 ☕".encode() in theirs.content
    assert body(ours) == body(theirs)


def test_body_keys_are_in_the_sdks_order() -> None:
    """Not needed by the API, but keeps captured bodies diffable against the SDK's."""
    kwargs = _every_parameter(_dict_messages(), _dict_tools(), _dict_documents(), False)
    theirs, ours = sdk_request(kwargs), our_request(kwargs)
    assert list(json.loads(ours.content)) == list(json.loads(theirs.content))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_like_the_sdk(value: float) -> None:
    """NaN and infinity are not JSON: both clients raise ValueError and send nothing."""
    kwargs: Kwargs = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    kwargs["temperature"] = value
    with pytest.raises(ValueError, match="JSON"):
        sdk_request(kwargs)
    captured = Captured()
    with httpx.Client(transport=httpx.MockTransport(captured)) as http:
        with streamkit.Client(API_KEY, base_url=BASE_URL, http_client=http) as ours:
            with pytest.raises(ValueError, match="JSON"):
                list(to_iterator(ours.chat_stream(**kwargs)))
    assert captured.requests == []


class _PlainMessage(pydantic.BaseModel):
    """A caller's own pydantic model, not one of the SDK's."""

    role: str = "user"
    content: str
    name: str | None = None


def test_plain_pydantic_models_are_dumped_like_the_sdks_own() -> None:
    """A deliberate difference, outside the SDK's typed API (it takes its own models or dicts).

    streamkit dumps any pydantic model as the SDK dumps its own: the fields set plus the
    non-None defaults. The SDK sends a foreign model through pydantic's deprecated ``.dict()``,
    which adds ``null`` for every unset optional field ("name": null here), a field the
    caller never asked to send.
    """
    kwargs: Kwargs = {"model": MODEL, "messages": [_PlainMessage(content="Hi")]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = json.loads(sdk_request(kwargs).content)
    ours = json.loads(our_request(kwargs).content)
    assert theirs["messages"] == [{"role": "user", "content": "Hi", "name": None}]
    assert ours["messages"] == [{"role": "user", "content": "Hi"}]
    assert body(our_request({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})) == (
        typed({"model": MODEL, "messages": ours["messages"], "stream": True})
    )


# ----------------------------------------------------------------------------- structured


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_model_class_sends_the_sdks_body_for_its_json_schema(stream: bool) -> None:
    """response_format=Model is the SDK's body for the JSON-schema format, byte for byte."""
    messages = [{"role": "user", "content": "A JSON city, please."}]
    theirs = sdk_request(
        {
            "model": MODEL,
            "messages": messages,
            "response_format": cohere.JsonObjectResponseFormatV2(json_schema=_CITY_SCHEMA),
        },
        stream=stream,
    )
    ours = our_request(
        {"model": MODEL, "messages": messages, "response_format": _City}, stream=stream
    )
    assert ours.content == theirs.content
    assert json.loads(ours.content)["response_format"]["json_schema"]["$defs"]["_Sight"]
    if stream:
        async_body = our_async_request(
            {"model": MODEL, "messages": messages, "response_format": _City}
        )
        assert async_body.content == theirs.content


@pytest.mark.parametrize(
    "response_type",
    [pytest.param(list[_City], id="list"), pytest.param(int, id="scalar")],
)
def test_a_type_whose_schema_is_not_an_object_is_refused_before_sending(
    response_type: Any,
) -> None:
    captured = Captured()
    with httpx.Client(transport=httpx.MockTransport(captured)) as http:
        with streamkit.Client(API_KEY, base_url=BASE_URL, http_client=http) as ours:
            with pytest.raises(streamkit.errors.InvalidSchemaError, match="object"):
                ours.chat_stream(model=MODEL, messages=[], response_format=response_type)
            with pytest.raises(ValueError, match="wrap it in a model"):
                ours.chat(model=MODEL, messages=[], response_format=response_type)
    assert captured.requests == []


def test_a_type_pydantic_has_no_schema_for_is_refused() -> None:
    class Opaque:
        pass

    with pytest.raises(streamkit.errors.InvalidSchemaError, match="no JSON schema"):
        streamkit.json_response_format(Opaque)
