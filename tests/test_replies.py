"""The scripted replies of the offline backend, as pure data: no sockets here."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from streamkit import json_response_format
from streamkit._replies import ScriptedReply, script_reply, tokenize
from streamkit.errors import OfflineRequestError, StreamkitError

JSON = dict[str, Any]

QUESTION = 'What\'s the weather in Paris and Berlin, "roughly", over 12 days? 🌦'
BASE: JSON = {"model": "command-a-03-2025", "messages": [{"role": "user", "content": QUESTION}]}
THINKING: JSON = {"type": "enabled", "token_budget": 500}

WEATHER: JSON = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "query": {"type": "string"},
            },
            "required": ["city"],
        },
    },
}
NOW: JSON = {"type": "function", "function": {"name": "current_time", "description": "No args."}}
SEARCH: JSON = {
    "type": "function",
    "function": {
        "name": "web_search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "number"}},
        },
    },
}

TOOL_CONVERSATION: list[JSON] = [
    {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    {
        "role": "assistant",
        "tool_plan": "I will look it up.",
        "tool_calls": [
            {
                "id": "get_weather_abc123def456",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "web_search_0123456789ab",
                "type": "function",
                "function": {"name": "web_search", "arguments": '{"query": "Berlin"}'},
            },
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "get_weather_abc123def456",
        "content": '{"temperature": "21.5°C", "sky": "clear"}',
    },
    {
        "role": "tool",
        "tool_call_id": "web_search_0123456789ab",
        "content": [
            {"type": "document", "document": {"data": {"title": "Berlin", "snippet": "Mild."}}},
            {"type": "text", "text": "Berlin expects rain on 3 of 12 days."},
        ],
    },
]

DOCUMENTS: list[Any] = [
    "Paris has a café on every corner, e.g. Café de Flore.",
    {
        "id": "berlin-facts",
        "data": {"title": "Berlin", "text": "Berlin gets 570 mm of rain a year."},
    },
    {"data": {"title": "Empty-ish", "year": 2024}},
]

KINDS: dict[str, JSON] = {
    "text": BASE,
    "text-parts": {
        "model": "command-a",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
        ],
    },
    "thinking": {**BASE, "thinking": THINKING},
    "tools": {**BASE, "tools": [WEATHER, SEARCH, NOW]},
    "tools-no-parameters": {**BASE, "tools": [NOW]},
    "tools+thinking": {**BASE, "tools": [WEATHER, NOW], "thinking": THINKING},
    "tool-results": {**BASE, "messages": TOOL_CONVERSATION, "tools": [WEATHER, SEARCH]},
    "documents": {**BASE, "documents": DOCUMENTS},
    "documents+thinking+logprobs": {
        **BASE,
        "documents": DOCUMENTS,
        "thinking": THINKING,
        "logprobs": True,
    },
    "logprobs": {**BASE, "logprobs": True},
    "max_tokens": {**BASE, "max_tokens": 7},
    "stop_sequences": {**BASE, "stop_sequences": ["nothing like this", "café"]},
}


# --- A small reference fold, written independently of streamkit's accumulator ------------------

_LETTERS = {
    "message-start": "S",
    "tool-plan-delta": "P",
    "tool-call-start": "A",
    "tool-call-delta": "B",
    "tool-call-end": "C",
    "content-start": "X",
    "content-delta": "Y",
    "citation-start": "Q",
    "citation-end": "R",
    "content-end": "Z",
    "message-end": "E",
}
# cohere-v2-stream.md §2, with citations where every recording has them.
GRAMMAR = re.compile(r"SP*(AB*C)*(XY*(QR)*Z)*E")
# A reasoning model thinks before it calls tools: thinking block, calls, no plan (§2).
REASONING_TOOL_GRAMMAR = re.compile(r"SXY*Z(AB*C)+E")


def check_grammar(events: list[JSON]) -> None:
    """Assert the event order and the index bookkeeping of §2/§3."""
    letters = "".join(_LETTERS[event["type"]] for event in events)
    if GRAMMAR.fullmatch(letters) is None:
        assert REASONING_TOOL_GRAMMAR.fullmatch(letters), letters
        assert events[1]["delta"]["message"]["content"]["type"] == "thinking"
    assert "id" in events[0] and all("id" not in event for event in events[1:])
    blocks = [e["index"] for e in events if e["type"] == "content-start"]
    calls = [e["index"] for e in events if e["type"] == "tool-call-start"]
    citations = [e["index"] for e in events if e["type"] == "citation-start"]
    assert blocks == sorted(blocks) and set(blocks) == set(range(len(blocks)))
    assert calls == list(range(len(calls)))
    assert citations == list(range(len(citations)))
    current = None
    for event in events:
        if event["type"] in ("content-start", "tool-call-start", "citation-start"):
            current = event["index"]
        elif event["type"] in ("content-delta", "content-end", "tool-call-delta", "tool-call-end"):
            if event["type"] != "content-delta" or current is not None:
                assert event["index"] == current or event["type"] == "content-end"
        if event["type"] == "citation-end":
            assert event["index"] == current
    for event in events:
        if event["type"] == "tool-plan-delta":
            assert "index" not in event


def fold(events: list[JSON]) -> JSON:
    """Fold streamed events into the non-streaming reply (§4), empty parts left out."""
    reply: JSON = {}
    role = ""
    blocks: dict[int, JSON] = {}
    plan = ""
    calls: dict[int, JSON] = {}
    citations: list[JSON] = []
    logprobs: list[JSON] = []
    for event in events:
        kind = event["type"]
        if kind == "message-start":
            reply["id"] = event["id"]
            role = event["delta"]["message"]["role"]
        elif kind == "content-start":
            blocks[event["index"]] = dict(event["delta"]["message"]["content"])
        elif kind == "content-delta":
            for key, piece in event["delta"]["message"]["content"].items():
                blocks[event["index"]][key] += piece
            if "logprobs" in event:
                logprobs.append(event["logprobs"])
        elif kind == "tool-plan-delta":
            plan += event["delta"]["message"]["tool_plan"]
        elif kind == "tool-call-start":
            calls[event["index"]] = copy.deepcopy(event["delta"]["message"]["tool_calls"])
        elif kind == "tool-call-delta":
            piece = event["delta"]["message"]["tool_calls"]["function"]["arguments"]
            calls[event["index"]]["function"]["arguments"] += piece
        elif kind == "citation-start":
            citations.append(event["delta"]["message"]["citations"])
        elif kind == "message-end":
            reply["finish_reason"] = event["delta"]["finish_reason"]
            reply["usage"] = event["delta"]["usage"]
        else:
            assert kind in ("content-end", "tool-call-end", "citation-end"), kind
    message: JSON = {"role": role}
    if blocks:
        message["content"] = [blocks[i] for i in sorted(blocks)]
    if plan:
        message["tool_plan"] = plan
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if citations:
        message["citations"] = citations
    reply["message"] = message
    if logprobs:
        reply["logprobs"] = logprobs
    return reply


def check_reply(reply: ScriptedReply) -> None:
    """Every invariant that holds for any scripted reply."""
    events = reply.stream_events()
    response = reply.response()
    check_grammar(events)
    assert fold(events) == response
    # Both forms are plain JSON (the server sends them as is).
    assert json.loads(json.dumps(events)) == events
    assert json.loads(json.dumps(response)) == response
    deltas = [e for e in events if e["type"].endswith("-delta")]
    assert all(_delta_text(e) != "" for e in deltas)
    usage = response["usage"]
    assert usage["billed_units"]["output_tokens"] == len(deltas)
    assert usage["tokens"]["output_tokens"] == len(deltas)
    assert usage["tokens"]["input_tokens"] > usage["billed_units"]["input_tokens"] > 0
    assert usage["cached_tokens"] == 0
    message = response["message"]
    texts = [block["text"] for block in message.get("content", []) if block["type"] == "text"]
    for citation in message.get("citations", []):
        assert texts[-1][citation["start"] : citation["end"]] == citation["text"] != ""
        assert citation["type"] == "TEXT_CONTENT" and citation["sources"]
    for call in message.get("tool_calls", []):
        arguments = call["function"]["arguments"]
        assert arguments == "" or isinstance(json.loads(arguments), dict)
        assert re.fullmatch(re.escape(call["function"]["name"]) + r"_[a-z0-9]{12}", call["id"])
    if "tool_calls" in message:
        assert response["finish_reason"] == "TOOL_CALL" and "citations" not in message
        assert all(block["type"] == "thinking" for block in message.get("content", []))
    if "logprobs" in response:
        for item, event in zip(response["logprobs"], _content_deltas(events), strict=True):
            assert item["text"] == "".join(event["delta"]["message"]["content"].values())
            assert len(item["token_ids"]) == len(item["logprobs"]) == 1


def _delta_text(event: JSON) -> str:
    message = event["delta"]["message"]
    if "content" in message:
        return "".join(message["content"].values())
    if "tool_plan" in message:
        return str(message["tool_plan"])
    return str(message["tool_calls"]["function"]["arguments"])


def _content_deltas(events: list[JSON]) -> list[JSON]:
    return [event for event in events if event["type"] == "content-delta"]


# --- Every kind -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [pytest.param(body, id=kind) for kind, body in KINDS.items()])
def test_every_kind_follows_the_grammar_and_folds_into_its_response(body: JSON) -> None:
    reply = script_reply(body)
    check_reply(reply)
    assert script_reply({**body, "stream": True}) == reply
    assert script_reply({**body, "stream": False}).response() == reply.response()
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", reply.id
    )


def test_plain_text_has_realistic_tokens() -> None:
    response = script_reply(BASE).response()
    text = response["message"]["content"][0]["text"]
    assert response["finish_reason"] == "COMPLETE"
    assert QUESTION in text and "e.g." in text and "café" in text and "☕" in text
    assert re.search(r"\d\.\d", text)
    pieces = [
        e["delta"]["message"]["content"]["text"]
        for e in _content_deltas(script_reply(BASE).stream_events())
    ]
    assert " Paris" in pieces and "," in pieces and " answer" in pieces
    assert len(text.split(". ")) >= 3


def test_text_parts_and_a_missing_user_message() -> None:
    text = script_reply(KINDS["text-parts"]).response()["message"]["content"][0]["text"]
    assert '"Hi"' in text
    only_system = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}]}
    assert "your message" in script_reply(only_system).response()["message"]["content"][0]["text"]


def test_thinking_is_block_zero_and_the_answer_block_one() -> None:
    events = script_reply(KINDS["thinking"]).stream_events()
    starts = [e for e in events if e["type"] == "content-start"]
    assert [s["delta"]["message"]["content"] for s in starts] == [
        {"type": "thinking", "thinking": ""},
        {"type": "text", "text": ""},
    ]
    thinking = [e for e in _content_deltas(events) if e["index"] == 0]
    assert thinking and all(set(e["delta"]["message"]["content"]) == {"thinking"} for e in thinking)


def test_thinking_budget_cuts_only_the_thinking() -> None:
    body = {**BASE, "thinking": {"type": "enabled", "token_budget": 3}}
    content = script_reply(body).response()["message"]["content"]
    assert len(tokenize(content[0]["thinking"])) == 3
    assert content[1] == script_reply(BASE).response()["message"]["content"][0]


def test_tool_calling_turn() -> None:
    reply = script_reply(KINDS["tools"])
    events = reply.stream_events()
    message = reply.response()["message"]
    assert "content" not in message and not any(e["type"].startswith("content") for e in events)
    assert message["tool_plan"].startswith("I will call get_weather and web_search")
    assert [call["function"]["name"] for call in message["tool_calls"]] == [
        "get_weather",
        "web_search",
    ]
    weather, search = (json.loads(call["function"]["arguments"]) for call in message["tool_calls"])
    assert weather == {"city": "Paris", "days": 12, "unit": "celsius", "query": QUESTION}
    assert search == {"query": QUESTION, "limit": 12.0}
    pretty, compact = (call["function"]["arguments"] for call in message["tool_calls"])
    assert pretty.startswith('{\n    "city": ') and compact.startswith('{"query": ')
    fragments = [
        e["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for e in events
        if e["type"] == "tool-call-delta" and e["index"] == 0
    ]
    assert "".join(fragments) == pretty
    # Awkward places: inside a key, inside a number, between a backslash and what it escapes.
    assert any(f.endswith('"ci') for f in fragments)
    seams = list(zip(fragments, fragments[1:], strict=False))
    assert ("1", "2") in [(a[-1], b[0]) for a, b in seams]
    assert ("\\", '"') in [(a[-1], b[0]) for a, b in seams]


def test_a_tool_without_parameters_sends_no_delta() -> None:
    reply = script_reply(KINDS["tools-no-parameters"])
    events = reply.stream_events()
    assert [e["type"] for e in events if e["type"].startswith("tool-call")] == [
        "tool-call-start",
        "tool-call-end",
    ]
    (call,) = reply.response()["message"]["tool_calls"]
    assert call["function"] == {"name": "current_time", "arguments": ""}


def test_tools_with_thinking_have_no_plan() -> None:
    response = script_reply(KINDS["tools+thinking"]).response()
    message = response["message"]
    assert "tool_plan" not in message
    assert [block["type"] for block in message["content"]] == ["thinking"]
    assert [call["function"]["name"] for call in message["tool_calls"]] == [
        "get_weather",
        "current_time",
    ]
    assert response["finish_reason"] == "TOOL_CALL"


def test_tool_results_are_cited_by_call_id() -> None:
    message = script_reply(KINDS["tool-results"]).response()["message"]
    assert "tool_calls" not in message
    sources = [source for c in message["citations"] for source in c["sources"]]
    assert [(s["type"], s["id"]) for s in sources] == [
        ("tool", "get_weather_abc123def456:0"),
        ("tool", "web_search_0123456789ab:0"),
        ("tool", "web_search_0123456789ab:1"),
    ]
    assert sources[0]["tool_output"] == {"temperature": "21.5°C", "sky": "clear"}
    assert sources[1]["tool_output"] == {"title": "Berlin", "snippet": "Mild."}
    assert sources[2]["tool_output"] == {"text": "Berlin expects rain on 3 of 12 days."}
    assert [c["text"] for c in message["citations"]] == [
        "21.5°C",
        "Berlin",
        "Berlin expects rain on 3 of 12 days",
    ]
    assert "According to get_weather" in message["content"][0]["text"]


def test_documents_are_quoted_and_cited() -> None:
    reply = script_reply(KINDS["documents"])
    message = reply.response()["message"]
    sources = [c["sources"][0] for c in message["citations"]]
    assert sources[0] == {
        "type": "document",
        "id": "doc:0",
        "document": {"id": "doc:0", "text": DOCUMENTS[0]},
    }
    assert sources[1]["id"] == "berlin-facts" and sources[1]["document"] == {
        "id": "berlin-facts",
        "title": "Berlin",
        "text": "Berlin gets 570 mm of rain a year.",
    }
    assert sources[2]["document"] == {"id": "doc:2", "title": "Empty-ish", "year": 2024}
    events = reply.stream_events()
    types = [e["type"] for e in events]
    last_delta = max(i for i, t in enumerate(types) if t == "content-delta")
    assert types[last_delta + 1 : -2] == ["citation-start", "citation-end"] * 3
    assert types[-2] == "content-end"


def test_logprobs_ride_on_every_content_delta() -> None:
    reply = script_reply(KINDS["logprobs"])
    deltas = _content_deltas(reply.stream_events())
    assert all(e["logprobs"]["text"] == e["delta"]["message"]["content"]["text"] for e in deltas)
    assert reply.response()["logprobs"] == [e["logprobs"] for e in deltas]
    assert all(isinstance(e["logprobs"]["token_ids"][0], int) for e in deltas)
    assert all(e["logprobs"]["logprobs"][0] < 0 for e in deltas)
    assert "logprobs" not in script_reply(BASE).response()


def test_max_tokens_stops_early() -> None:
    response = script_reply(KINDS["max_tokens"]).response()
    full = script_reply(BASE).response()["message"]["content"][0]["text"]
    text = response["message"]["content"][0]["text"]
    assert response["finish_reason"] == "MAX_TOKENS"
    assert text == "".join(tokenize(full)[:7])
    assert response["usage"]["billed_units"]["output_tokens"] == 7
    long_enough = script_reply({**BASE, "max_tokens": 10_000}).response()
    assert long_enough["finish_reason"] == "COMPLETE"


def test_max_tokens_drops_citations_past_the_cut() -> None:
    full = script_reply(KINDS["documents"]).response()["message"]
    first = full["citations"][0]
    cut = len(tokenize(full["content"][0]["text"][: first["end"]]))
    message = script_reply({**KINDS["documents"], "max_tokens": cut}).response()["message"]
    assert message["citations"] == [first]


def test_stop_sequence_cuts_before_it() -> None:
    response = script_reply(KINDS["stop_sequences"]).response()
    full = script_reply(BASE).response()["message"]["content"][0]["text"]
    assert response["finish_reason"] == "STOP_SEQUENCE"
    assert response["message"]["content"][0]["text"] == full[: full.index("café")]
    absent = script_reply({**BASE, "stop_sequences": ["not in there"]}).response()
    assert absent["finish_reason"] == "COMPLETE"


def test_the_earlier_of_stop_sequence_and_max_tokens_wins() -> None:
    early_stop = script_reply({**BASE, "stop_sequences": ["answer"], "max_tokens": 30})
    assert early_stop.finish_reason == "STOP_SEQUENCE"
    early_limit = script_reply({**BASE, "stop_sequences": ["café"], "max_tokens": 3})
    assert early_limit.finish_reason == "MAX_TOKENS"


def test_ids_depend_on_the_body() -> None:
    one = script_reply(KINDS["tools"])
    two = script_reply({**KINDS["tools"], "model": "command-r"})
    assert one.id != two.id
    assert one.tool_calls[0].id != two.tool_calls[0].id


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        pytest.param({"messages": [{"role": "user", "content": "x"}]}, "'model'", id="no-model"),
        pytest.param({"model": "m"}, "'messages'", id="no-messages"),
        pytest.param({"model": "m", "messages": []}, "'messages'", id="empty-messages"),
        pytest.param({"model": "m", "messages": "hi"}, "'messages'", id="messages-not-list"),
        pytest.param({"model": "m", "messages": ["hi"]}, "messages[0]", id="message-not-object"),
        pytest.param({**BASE, "max_tokens": 0}, "'max_tokens'", id="max-tokens-zero"),
        pytest.param({**BASE, "stop_sequences": "x"}, "'stop_sequences'", id="stop-not-list"),
        pytest.param({**BASE, "tools": [{"type": "function"}]}, "tools[0]", id="tool-no-name"),
        pytest.param({**BASE, "stream": "yes"}, "'stream'", id="stream-not-bool"),
        pytest.param(
            {"model": "m", "messages": [{"role": "bogus"}]}, "messages[0].role", id="bogus-role"
        ),
        pytest.param(
            {**BASE, "messages": [*BASE["messages"], {"role": "tool", "content": "x"}]},
            "tool_call_id",
            id="tool-result-without-call-id",
        ),
    ],
)
def test_bad_bodies_are_refused(body: JSON, complaint: str) -> None:
    with pytest.raises(OfflineRequestError, match=re.escape(complaint)) as caught:
        script_reply(body)
    # In the one tree, and still the ValueError it always was.
    assert isinstance(caught.value, StreamkitError) and isinstance(caught.value, ValueError)


def test_an_unanswered_tool_result_lists_the_first_calls_made() -> None:
    calls = [{"id": f"call_{n}", "type": "function"} for n in range(7)]
    result = {"role": "tool", "tool_call_id": "call_9", "content": "x"}
    body = {
        **BASE,
        "messages": [*BASE["messages"], {"role": "assistant", "tool_calls": calls}, result],
    }
    with pytest.raises(OfflineRequestError) as caught:
        script_reply(body)
    assert str(caught.value) == (
        'messages[2].tool_call_id "call_9" answers no tool call made earlier in the conversation '
        "(the calls made so far: 'call_0', 'call_1', 'call_2', 'call_3', 'call_4', ...)"
    )


# --- Properties -------------------------------------------------------------------------------


@given(st.text())
def test_tokens_join_back_into_the_text(text: str) -> None:
    pieces = tokenize(text)
    assert "".join(pieces) == text
    assert all(pieces)


def _tokenize_by_the_book(text: str) -> list[str]:
    """The tokenizer as first written (quadratic in a word's length): the pieces to keep."""
    pieces: list[str] = []
    for match in re.finditer(r"\s*(?:[^\W\d_]+|\d+|[^\w\s]|_)|\s+", text):
        piece = match.group()
        word = piece.lstrip()
        if len(word) <= 7 or not word.isalpha():
            pieces.append(piece)
            continue
        pieces.append(piece[: len(piece) - len(word) + 5])
        rest = word[5:]
        while rest:
            pieces.append(rest[:5])
            rest = rest[5:]
    return pieces


@given(st.text() | st.text(alphabet="ab é\t漢", max_size=80))
def test_tokens_are_split_where_they_always_were(text: str) -> None:
    assert tokenize(text) == _tokenize_by_the_book(text)


def test_tokenizing_a_long_word_is_linear() -> None:
    def seconds(size: int) -> float:
        word = "a" * size
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            pieces = tokenize(word)
            best = min(best, time.perf_counter() - start)
        assert len(pieces) == size // 5 and pieces[-1] == "aaaaa"
        return best

    one, two = seconds(1_000_000), seconds(2_000_000)
    # Quadratic took 4.2 s and 38 s here; linear takes a few hundredths of a second. The
    # bounds are generous for a loaded machine: doubling the input may not quadruple the time.
    assert one < 1.0 and two < 1.0
    assert two < 4 * one + 0.05


_names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
_leaf_schemas = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": ["string", "null"]},
        {"type": "string", "enum": ["a", "b"]},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "string", "format": "date"},
    ]
)
_schemas = st.recursive(
    _leaf_schemas,
    lambda inner: st.dictionaries(_names, inner, max_size=3).map(
        lambda properties: {"type": "object", "properties": properties}
    ),
    max_leaves=6,
)
_tools = st.builds(
    lambda name, properties: {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": properties}},
    },
    _names,
    st.dictionaries(_names, _schemas, max_size=4),
)
_documents = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda data, doc_id: {"data": data} if doc_id is None else {"id": doc_id, "data": data},
            st.dictionaries(_names, st.one_of(st.text(max_size=40), st.integers()), max_size=3),
            st.none() | _names,
        ),
    ),
    max_size=4,
)
_tool_results = st.lists(
    st.builds(
        lambda call_id, content: {"role": "tool", "tool_call_id": call_id, "content": content},
        _names,
        st.one_of(
            st.text(max_size=40),
            st.dictionaries(_names, st.integers() | st.text(max_size=20)).map(json.dumps),
            st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()})),
        ),
    ),
    max_size=3,
)


@st.composite
def _bodies(draw: st.DrawFn) -> JSON:
    body: JSON = {
        "model": "command-a",
        "messages": [{"role": "user", "content": draw(st.text(max_size=120))}],
    }
    results = draw(_tool_results)
    if results:
        # A tool result answers a call made earlier in the conversation, as the API requires.
        calls = [
            {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            for call_id in dict.fromkeys(result["tool_call_id"] for result in results)
        ]
        body["messages"] += [{"role": "assistant", "tool_calls": calls}, *results]
    optional: Mapping[str, st.SearchStrategy[Any]] = {
        "tools": st.lists(_tools, max_size=3),
        "documents": _documents,
        "thinking": st.builds(
            lambda budget: {
                "type": "enabled",
                **({} if budget is None else {"token_budget": budget}),
            },
            st.none() | st.integers(1, 40),
        ),
        "logprobs": st.booleans(),
        "max_tokens": st.integers(1, 80),
        "stop_sequences": st.lists(st.sampled_from(["café", "e.g.", ".", "Paris", "", "zz"])),
        "stream": st.booleans(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@settings(max_examples=100, deadline=None)
@given(_bodies())
def test_any_body_gets_a_consistent_reply(body: JSON) -> None:
    reply = script_reply(body)
    check_reply(reply)
    assert script_reply({**body, "stream": not body.get("stream", False)}) == reply
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and reply.finish_reason != "TOOL_CALL":
        assert reply.output_tokens <= max_tokens


# --------------------------------------------------------------------------- structured replies


class _Kind(str, Enum):
    BOOK = "book"
    FILM = "film"


class _Credit(BaseModel):
    person: str
    role: Literal["author", "director"]


class _Work(BaseModel):
    title: str
    kind: _Kind
    year: int
    rating: float | None = None
    credits: list[_Credit]
    sequel: _Work | None = None
    notes: dict[str, int] = {}
    tags: list[list[str]] = []
    catalogue: Literal["v2"] = "v2"


class _Shelf(BaseModel):
    works: list[_Work]
    owner: str


def _structured_body(model: type[BaseModel], question: str) -> dict[str, Any]:
    return {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": question}],
        "response_format": json_response_format(model),
    }


@pytest.mark.parametrize("model", [_Work, _Shelf])
@pytest.mark.parametrize("question", ["Two films about Lisbon", "A book of 1984, please"])
def test_a_json_mode_reply_fits_the_schema_in_small_pieces(
    model: type[BaseModel], question: str
) -> None:
    reply = script_reply(_structured_body(model, question))
    [block] = reply.content
    pieces = [token.text for token in block.tokens]
    text = "".join(pieces)
    model.model_validate_json(text)  # $defs, $ref, anyOf, enum, Literal, nested lists
    assert max(len(piece) for piece in pieces) <= 7 and len(pieces) > 10
    assert reply.finish_reason == "COMPLETE"
    assert script_reply(_structured_body(model, question)) == reply  # deterministic
    assert reply.response()["message"]["content"][0]["text"] == text


def test_json_mode_without_a_schema_answers_a_json_object() -> None:
    body = _structured_body(_Work, "Hi")
    body["response_format"] = {"type": "json_object"}
    [block] = script_reply(body).content
    assert set(json.loads(block.text)) == {"answer"}


def test_json_mode_cut_by_max_tokens_is_invalid_json() -> None:
    body = {**_structured_body(_Work, "A film"), "max_tokens": 4}
    reply = script_reply(body)
    assert reply.finish_reason == "MAX_TOKENS"
    with pytest.raises(ValueError):
        json.loads(reply.content[0].text)


def test_tool_parameters_with_refs_are_filled_from_their_definitions() -> None:
    tool = {
        "type": "function",
        "function": {"name": "save", "parameters": _Credit.model_json_schema()},
    }
    body = {**_structured_body(_Work, "Save it"), "tools": [tool]}
    del body["response_format"]
    [call] = script_reply(body).tool_calls
    assert _Credit.model_validate_json(call.arguments)
