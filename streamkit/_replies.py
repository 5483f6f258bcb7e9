"""Scripted replies for the offline backend: pure logic, no I/O.

`script_reply` reads a V2 chat request body and returns one `ScriptedReply`: a structured
description of the assistant message. Both wire forms are derived from it, so they always
describe the same message:

- `ScriptedReply.stream_events()`: the ``"stream": true`` events, in order, with the exact shapes
  of docs ``cohere-v2-stream.md`` §3;
- `ScriptedReply.response()`: the non-streaming V2 JSON reply (§4), empty parts left out.

Which reply is scripted depends only on the request (see `script_reply`), never on ``stream``, and
every "random-looking" value (ids, token ids, log-probabilities, fragment sizes) comes from a hash
of the body, so the same request always gets the same reply.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from streamkit.errors import OfflineRequestError

__all__ = [
    "Citation",
    "ContentBlock",
    "ScriptedReply",
    "Token",
    "ToolCall",
    "script_reply",
    "tokenize",
]

_JSON = dict[str, Any]

# Tokens the template around the user's words costs: `usage.tokens.input_tokens` includes the
# prompt template, so it is larger than `billed_units.input_tokens` (§3, message-end).
_TEMPLATE_TOKENS = 180
_TOOL_TEMPLATE_TOKENS = 45
_DOCUMENT_TEMPLATE_TOKENS = 25

_MAX_TOOL_CALLS = 2
_MAX_CITED_RESULTS = 4
_MAX_CITED_DOCUMENTS = 3


@dataclass(frozen=True)
class Token:
    """One generated token: the text of one delta, with its token id and log-probability."""

    text: str
    token_id: int
    logprob: float


@dataclass(frozen=True)
class Citation:
    """A cited span of a text block: `start`/`end` are code-point offsets, end exclusive."""

    start: int
    end: int
    text: str
    sources: tuple[Mapping[str, Any], ...]

    def to_json(self) -> _JSON:
        """The citation object as it appears on the wire and in ``message.citations``."""
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "sources": copy.deepcopy([dict(source) for source in self.sources]),
            "type": "TEXT_CONTENT",
        }


@dataclass(frozen=True)
class ContentBlock:
    """One block of ``message.content``: its kind, its tokens and the citations into it."""

    kind: Literal["text", "thinking"]
    tokens: tuple[Token, ...]
    citations: tuple[Citation, ...] = ()

    @property
    def text(self) -> str:
        """The block's whole text: its tokens joined."""
        return "".join(token.text for token in self.tokens)

    def to_json(self) -> _JSON:
        """The block as an item of ``message.content``."""
        return {"type": self.kind, self.kind: self.text}


@dataclass(frozen=True)
class ToolCall:
    """One tool call: its id, the tool's name and the argument fragments, in streaming order."""

    id: str
    name: str
    fragments: tuple[str, ...]

    @property
    def arguments(self) -> str:
        """The raw JSON text of the arguments (``""`` for a call without arguments)."""
        return "".join(self.fragments)

    def to_json(self) -> _JSON:
        """The call as an item of ``message.tool_calls`` (arguments stay a JSON string)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted assistant message, from which both wire forms are derived.

    Streaming order: thinking blocks, then the tool plan, then the tool calls, then the remaining
    content blocks. Without thinking this is exactly the grammar of §2; a reasoning model thinks
    before it calls tools, so its thinking block (content index 0) comes first.
    """

    id: str
    finish_reason: str
    content: tuple[ContentBlock, ...] = ()
    tool_plan: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 1
    prompt_tokens: int = _TEMPLATE_TOKENS
    logprobs: bool = False

    @property
    def citations(self) -> list[Citation]:
        """Every citation of the message, in order (their wire `index` is the list position)."""
        return [citation for block in self.content for citation in block.citations]

    @property
    def output_tokens(self) -> int:
        """The number of generated tokens: one per delta event."""
        content = sum(len(block.tokens) for block in self.content)
        calls = sum(len(call.fragments) for call in self.tool_calls)
        return content + len(self.tool_plan) + calls

    def usage(self) -> _JSON:
        """The ``usage`` object of ``message-end`` and of the non-streaming reply."""
        output = self.output_tokens
        return {
            "billed_units": {"input_tokens": self.input_tokens, "output_tokens": output},
            "tokens": {"input_tokens": self.prompt_tokens, "output_tokens": output},
            "cached_tokens": 0,
        }

    def stream_events(self) -> list[_JSON]:
        """The streamed events, in order, without the final ``[DONE]``."""
        events: list[_JSON] = [
            {
                "id": self.id,
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
            }
        ]
        leading = 0
        while leading < len(self.content) and self.content[leading].kind == "thinking":
            leading += 1
        citation_index = 0
        for index in range(leading):
            citation_index = self._block_events(events, index, citation_index)
        for piece in self.tool_plan:
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
        for index, call in enumerate(self.tool_calls):
            start_call = {**call.to_json(), "function": {"name": call.name, "arguments": ""}}
            events.append(_indexed("tool-call-start", index, {"tool_calls": start_call}))
            for fragment in call.fragments:
                delta = {"tool_calls": {"function": {"arguments": fragment}}}
                events.append(_indexed("tool-call-delta", index, delta))
            events.append({"type": "tool-call-end", "index": index})
        for index in range(leading, len(self.content)):
            citation_index = self._block_events(events, index, citation_index)
        events.append(
            {
                "type": "message-end",
                "delta": {"finish_reason": self.finish_reason, "usage": self.usage()},
            }
        )
        return events

    def _block_events(self, events: list[_JSON], index: int, citation_index: int) -> int:
        block = self.content[index]
        start = {"content": {"type": block.kind, block.kind: ""}}
        events.append(_indexed("content-start", index, start))
        for token in block.tokens:
            event = _indexed("content-delta", index, {"content": {block.kind: token.text}})
            if self.logprobs:
                event["logprobs"] = _logprob_item(token)
            events.append(event)
        # Every real recording puts the citations after the block's last delta (§2).
        for citation in block.citations:
            citation_start = {"citations": citation.to_json()}
            events.append(_indexed("citation-start", citation_index, citation_start))
            events.append({"type": "citation-end", "index": citation_index})
            citation_index += 1
        events.append({"type": "content-end", "index": index})
        return citation_index

    def response(self) -> _JSON:
        """The non-streaming V2 reply: the same message, with empty parts left out (§4)."""
        message: _JSON = {"role": "assistant"}
        if self.content:
            message["content"] = [block.to_json() for block in self.content]
        if self.tool_plan:
            message["tool_plan"] = "".join(self.tool_plan)
        if self.tool_calls:
            message["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.citations:
            message["citations"] = [citation.to_json() for citation in self.citations]
        reply: _JSON = {
            "id": self.id,
            "finish_reason": self.finish_reason,
            "message": message,
            "usage": self.usage(),
        }
        tokens = [token for block in self.content for token in block.tokens]
        if self.logprobs and tokens:
            reply["logprobs"] = [_logprob_item(token) for token in tokens]
        return reply


def _indexed(event_type: str, index: int, message: _JSON) -> _JSON:
    return {"type": event_type, "index": index, "delta": {"message": message}}


def _logprob_item(token: Token) -> _JSON:
    return {"text": token.text, "token_ids": [token.token_id], "logprobs": [token.logprob]}


# --- Tokens -------------------------------------------------------------------------------------

# A piece is optional leading whitespace plus a run of letters, a run of digits or one other
# character; trailing whitespace is a piece of its own. Every character belongs to exactly one
# piece, so joining the pieces gives the text back.
_PIECE = re.compile(r"\s*(?:[^\W\d_]+|\d+|[^\w\s]|_)|\s+")
_LONG_WORD = 7
_SUBWORD = 5


def tokenize(text: str) -> list[str]:
    """Split text into token-like pieces with leading spaces: ``" Paris"``, ``","``, ``" the"``.

    Long words are split into sub-word pieces as real tokenizers do. Joining the pieces always
    gives `text` back.

    Example:
        >>> tokenize("Hi, café backends: 3.5!")
        ['Hi', ',', ' café', ' backe', 'nds', ':', ' 3', '.', '5', '!']
    """
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        piece = match.group()
        word = piece.lstrip()
        if len(word) <= _LONG_WORD or not word.isalpha():
            pieces.append(piece)
            continue
        # Slice at fixed offsets: re-slicing the remainder after each sub-word would copy it
        # every time, quadratic in the word's length (a 2 MB word took 38 s).
        first = len(piece) - len(word) + _SUBWORD
        pieces.append(piece[:first])
        pieces.extend(piece[i : i + _SUBWORD] for i in range(first, len(piece), _SUBWORD))
    return pieces


class _Hasher:
    """Deterministic "random-looking" numbers derived from the request."""

    def __init__(self, seed: str) -> None:
        self.seed = seed

    def digest(self, *parts: object) -> bytes:
        text = "\x1f".join([self.seed, *map(str, parts)])
        return hashlib.sha256(text.encode("utf-8", "replace")).digest()

    def number(self, *parts: object) -> int:
        return int.from_bytes(self.digest(*parts)[:8], "big")

    def tokens(self, kind: str, pieces: Sequence[str]) -> tuple[Token, ...]:
        return tuple(
            Token(
                text=piece,
                token_id=1 + self.number(kind, "id", i, piece) % 255_000,
                logprob=-(1 + self.number(kind, "logprob", i) % 2500) / 1000,
            )
            for i, piece in enumerate(pieces)
        )

    def alnum(self, length: int, *parts: object) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        value = self.number(*parts)
        chars = []
        for _ in range(length):
            value, digit = divmod(value, len(alphabet))
            chars.append(alphabet[digit])
        return "".join(chars)


# --- The request --------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OfflineRequestError(message)


def _validate(body: Mapping[str, Any]) -> None:
    model = body.get("model")
    _require(isinstance(model, str) and model.strip() != "", "'model' is required: a model name")
    messages: Any = body.get("messages")
    _require(
        isinstance(messages, list) and len(messages) > 0,
        "'messages' is required: a non-empty list of messages",
    )
    _validate_messages(messages)
    for key in ("stream", "logprobs"):
        _require(body.get(key) is None or isinstance(body[key], bool), f"'{key}' must be a boolean")
    max_tokens = body.get("max_tokens")
    _require(
        max_tokens is None
        or (isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0),
        "'max_tokens' must be a positive integer",
    )
    stops = body.get("stop_sequences")
    _require(
        stops is None or (isinstance(stops, list) and all(isinstance(s, str) for s in stops)),
        "'stop_sequences' must be a list of strings",
    )
    tools = body.get("tools")
    _require(tools is None or isinstance(tools, list), "'tools' must be a list of tools")
    for position, tool in enumerate(tools or []):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        _require(
            isinstance(function, Mapping) and isinstance(function.get("name"), str),
            f"tools[{position}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
        )
    documents = body.get("documents")
    _require(
        documents is None or isinstance(documents, list), "'documents' must be a list of documents"
    )
    thinking = body.get("thinking")
    _require(thinking is None or isinstance(thinking, Mapping), "'thinking' must be an object")


# --- Messages -----------------------------------------------------------------------------------
#
# The shapes of the official SDK's `ChatMessageV2` union (cohere 7.x, `types/chat_message_v2.py`),
# checked as the API checks them so that a conversation the offline backend accepts also
# passes live. Optional fields may be sent as null: the SDK's typed models, dumped with the
# fields the caller set, do that.

_ROLES = ("user", "assistant", "system", "tool")

# The content parts each role may send: `Content` (user), `AssistantMessageV2ContentOneItem`,
# `SystemMessageV2ContentOneItem` and `ToolContent`. The SDK also defines a `document` part
# (`DocumentContent`) that none of its unions names; a user message may send it here, since
# refusing what the API takes would break code that works live, while the reverse only
# defers an error to the first live run.
_PARTS: dict[str, tuple[str, ...]] = {
    "user": ("text", "image_url", "document"),
    "assistant": ("text", "thinking"),
    "system": ("text",),
    "tool": ("text", "document"),
}

_HINTED_CALL_IDS = 5


def _validate_messages(messages: list[Any]) -> None:
    """Check every message, and that each tool result answers a call made before it."""
    call_ids: dict[str, None] = {}  # an ordered set, for the hint in the error
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        _require(
            isinstance(message, Mapping) and isinstance(message.get("role"), str),
            f"{where} must be an object with a 'role'",
        )
        role = message["role"]
        _require(
            role in _ROLES,
            f"{where}.role must be one of {_listed(_ROLES)}, not {_shown(role)}",
        )
        if role == "assistant":
            call_ids.update(dict.fromkeys(_assistant_call_ids(where, message)))
        elif role == "tool":
            _check_tool_result(where, message, call_ids)
        else:
            _require(
                _given(message, "content"),
                f"{where}.content is required in a {role} message: a string or a list of "
                f"content parts ({_listed(_PARTS[role])})",
            )
            _check_content(where, role, message["content"])


def _assistant_call_ids(where: str, message: Mapping[str, Any]) -> list[str]:
    """Check an assistant message and return the ids of the tool calls it made."""
    for key, kind, expected in (
        ("tool_calls", "a list of tool calls", list),
        ("tool_plan", "a string", str),
        ("citations", "a list of citations", list),
    ):
        _require(
            not _given(message, key) or isinstance(message[key], expected),
            f"{where}.{key} must be {kind}",
        )
    calls = message.get("tool_calls")
    _require(
        _given(message, "content") or bool(calls),
        f"{where}.content or {where}.tool_calls is required in an assistant message "
        "(a 'tool_plan' goes with the 'tool_calls' it plans)",
    )
    if _given(message, "content"):
        _check_content(where, "assistant", message["content"])
    ids: list[str] = []
    for index, call in enumerate(calls or []):
        here = f"{where}.tool_calls[{index}]"
        _require(isinstance(call, Mapping), f"{here} must be an object with an 'id'")
        _require(isinstance(call.get("id"), str), f"{here}.id is required: a string")
        _require(call.get("type") in (None, "function"), f"{here}.type must be 'function'")
        function = call.get("function")
        _require(
            function is None or isinstance(function, Mapping),
            f"{here}.function must be an object with a 'name' and 'arguments'",
        )
        for key in ("name", "arguments"):
            _require(
                not _given(function or {}, key) or isinstance(function[key], str),
                f"{here}.function.{key} must be a string",
            )
        ids.append(call["id"])
    return ids


def _check_tool_result(
    where: str, message: Mapping[str, Any], call_ids: Mapping[str, None]
) -> None:
    call_id = message.get("tool_call_id")
    _require(
        isinstance(call_id, str),
        f"{where}.tool_call_id is required in a tool message: the id of the tool call it answers",
    )
    if call_id not in call_ids:
        hint = "no assistant message before it made a tool call"
        if call_ids:
            shown = [f"'{known}'" for known in list(call_ids)[:_HINTED_CALL_IDS]]
            if len(call_ids) > _HINTED_CALL_IDS:
                shown.append("...")
            hint = f"the calls made so far: {', '.join(shown)}"
        raise OfflineRequestError(
            f"{where}.tool_call_id {_shown(call_id)} answers no tool call made earlier in the "
            f"conversation ({hint})"
        )
    _require(
        _given(message, "content"),
        f"{where}.content is required in a tool message: the tool's output as a string or a "
        f"list of content parts ({_listed(_PARTS['tool'])})",
    )
    _check_content(where, "tool", message["content"])


def _check_content(where: str, role: str, content: Any) -> None:
    """Check a message's `content`: a string or a list of the parts its role may send."""
    parts = _PARTS[role]
    if isinstance(content, str):
        return
    _require(
        isinstance(content, list),
        f"{where}.content must be a string or a list of content parts ({_listed(parts)}), "
        f"not {_json_kind(content)}",
    )
    for index, part in enumerate(content):
        here = f"{where}.content[{index}]"
        kind: Any = part.get("type") if isinstance(part, Mapping) else None
        _require(
            isinstance(kind, str), f"{here} must be a content part with a 'type': {_listed(parts)}"
        )
        _require(
            kind in parts,
            f"{here}.type {_shown(kind)} is not a content part of {role} messages: "
            f"use {_listed(parts)}",
        )
        _check_part(here, kind, part)


def _check_part(where: str, kind: str, part: Mapping[str, Any]) -> None:
    """Check one content part's own field (`TextContent`, `ImageUrlContent`, ...)."""
    value: Any = part.get(kind)
    if kind in ("text", "thinking"):
        _require(isinstance(value, str), f"{where}.{kind} is required: a string")
    elif kind == "image_url":
        _require(
            isinstance(value, Mapping) and isinstance(value.get("url"), str),
            f"{where}.image_url must be an object with a 'url' string "
            "(a web URL or a base64 data URI)",
        )
    else:
        # The SDK types `data` as an object, but Cohere's own tool-use guide sends
        # `{"data": json.dumps(result)}`: the API takes a JSON string too.
        _require(
            isinstance(value, Mapping) and isinstance(value.get("data"), Mapping | str),
            f"{where}.document must be an object with a 'data' object or JSON string "
            "(and an optional 'id')",
        )
        _require(
            not _given(value, "id") or isinstance(value["id"], str),
            f"{where}.document.id must be a string",
        )


def _given(message: Mapping[str, Any], key: str) -> bool:
    """Whether an optional field was sent with a value (null counts as not sent)."""
    return message.get(key) is not None


def _listed(names: Sequence[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _shown(value: Any) -> str:
    """A value from the request, short enough to quote in an error message."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:59] + "…"


def _json_kind(value: Any) -> str:
    """What a JSON value other than a string or a list is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else "an object"


def _text_of(content: Any) -> str:
    """The text of a message's `content`: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return " ".join(parts)
    return ""


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    # Lone surrogates (legal in JSON, not in UTF-8) would make the reply unencodable.
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _request_seed(body: Mapping[str, Any]) -> str:
    # The reply must not depend on `stream`, so the streamed and non-streamed replies agree.
    without_stream = {key: value for key, value in body.items() if key != "stream"}
    text = json.dumps(without_stream, sort_keys=True, ensure_ascii=True, default=repr)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class _Request:
    body: Mapping[str, Any]
    hasher: _Hasher
    question: str
    names: list[str]
    numbers: list[str]
    structured: bool = False
    """The request asks for JSON (``response_format`` ``json_object``)."""


# Capitalised words that start questions rather than name places or people.
_NOT_NAMES = frozenset(
    "A An And Are At Can Could Did Do Does Find For Get Give Hello Hey Hi How I If In Is It Its "
    "Look Me My Of On Or Please Search Should Show Tell That The There This To Was We Were What "
    "When Where Which Who Why Will With Would You Your".split()
)


def _proper_names(text: str) -> list[str]:
    """Capitalised words, likeliest names first: a sentence's first word is capitalised anyway."""
    inside: list[str] = []
    opening: list[str] = []
    for match in re.finditer(r"\b[A-Z][^\W\d_]+", text):
        word = match.group()
        if word in _NOT_NAMES or word in inside or word in opening:
            continue
        before = text[: match.start()].rstrip()
        (opening if not before or before[-1] in ".!?" else inside).append(word)
    return inside + opening


# --- Script -------------------------------------------------------------------------------------


def script_reply(body: Mapping[str, Any]) -> ScriptedReply:
    """Script the assistant's reply to a V2 chat request body.

    The reply kind follows from the request, first match wins:

    1. the conversation ends with ``role: "tool"`` messages: a text answer citing the tool results;
    2. ``tools`` given: a tool-calling turn calling the first two tools (``finish_reason``
       ``TOOL_CALL``), with a tool plan, or a thinking block instead when thinking is enabled;
    3. ``response_format`` ``{"type": "json_object"}``: one JSON document as the text,
       filling its ``json_schema`` (nested objects, arrays of one to three items, some
       optional fields left out, the first ``enum`` value, ``$defs``/``$ref`` and ``anyOf``
       as pydantic writes them), streamed in 2 to 7 character pieces; without a schema,
       ``{"answer": ...}``. ``max_tokens`` cuts it into invalid JSON (``MAX_TOKENS``);
    4. ``documents`` given: a text answer quoting and citing the documents;
    5. otherwise a few sentences built around the last user message.

    ``thinking: {"type": "enabled"}`` adds a thinking block at content index 0 (cut to its
    ``token_budget``), ``logprobs: true`` adds log-probabilities to every content delta, and
    ``max_tokens`` / ``stop_sequences`` cut the content short (``MAX_TOKENS`` /
    ``STOP_SEQUENCE``); tool-calling turns are never cut.

    The messages are checked as the API checks them: the four roles, the content each role
    needs and the content parts it may send (the official SDK's ``ChatMessageV2`` shapes), and
    tool results that answer a tool call made earlier in the conversation.

    Args:
        body: The parsed JSON request body.

    Returns:
        The scripted reply; the same for the same body, whatever its ``stream`` value.

    Raises:
        OfflineRequestError: The body is not a chat request the API would accept (HTTP 400).
    """
    _validate(body)
    hasher = _Hasher(_request_seed(body))
    messages: list[Mapping[str, Any]] = body["messages"]
    user_texts = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    question = _one_line(user_texts[-1], 1_000) if user_texts and user_texts[-1].strip() else ""
    response_format = _mapping(body.get("response_format"))
    request = _Request(
        body=body,
        hasher=hasher,
        question=question,
        names=_proper_names(question),
        numbers=re.findall(r"\d+(?:\.\d+)?", question),
        structured=response_format.get("type") == "json_object",
    )
    message_id = str(uuid.UUID(bytes=hasher.digest("id")[:16], version=4))
    tools = [tool["function"] for tool in body.get("tools") or []][:_MAX_TOOL_CALLS]
    documents = body.get("documents") or []
    results = _trailing_tool_results(messages)
    thinking = _thinking(request, tools if not results else [])

    billed = max(1, len(tokenize(" ".join(_text_of(m.get("content")) for m in messages))))
    prompt = (
        billed
        + _TEMPLATE_TOKENS
        + _TOOL_TEMPLATE_TOKENS * len(body.get("tools") or [])
        + _DOCUMENT_TEMPLATE_TOKENS * len(documents)
    )
    common: dict[str, Any] = {
        "id": message_id,
        "input_tokens": billed,
        "prompt_tokens": prompt,
        "logprobs": body.get("logprobs") is True,
    }

    if tools and not results:
        calls = tuple(_tool_call(request, i, tool) for i, tool in enumerate(tools))
        plan: tuple[str, ...] = ()
        if thinking is None:
            names = " and ".join(call.name for call in calls)
            plan = tuple(tokenize(f"I will call {names} to answer {_quoted(question)}."))
        return ScriptedReply(
            finish_reason="TOOL_CALL",
            content=(thinking,) if thinking is not None else (),
            tool_plan=plan,
            tool_calls=calls,
            **common,
        )

    if request.structured and not results:
        # JSON mode: the text is one JSON document, streamed in small awkward pieces.
        pieces = _fragments(hasher, 0, _structured_reply(request, response_format))
        blocks = [] if thinking is None else [thinking]
        blocks.append(ContentBlock("text", hasher.tokens("text", pieces)))
        content, finish_reason = _limit(blocks, body.get("max_tokens"), None)
        return ScriptedReply(finish_reason=finish_reason, content=content, **common)
    if results:
        text, citations = _answer_tool_results(question, messages, results)
    elif documents:
        text, citations = _answer_documents(question, documents)
    else:
        text, citations = _answer_plainly(question), []
    blocks = [] if thinking is None else [thinking]
    blocks.append(ContentBlock("text", hasher.tokens("text", tokenize(text)), tuple(citations)))
    content, finish_reason = _limit(blocks, body.get("max_tokens"), body.get("stop_sequences"))
    return ScriptedReply(finish_reason=finish_reason, content=content, **common)


def _quoted(question: str) -> str:
    return f'"{_one_line(question, 80)}"' if question else "your message"


def _thinking(request: _Request, tools: Sequence[Mapping[str, Any]]) -> ContentBlock | None:
    settings = request.body.get("thinking")
    if not isinstance(settings, Mapping) or settings.get("type") != "enabled":
        return None
    asked = _quoted(request.question)
    if tools:
        names = " and ".join(str(tool["name"]) for tool in tools)
        text = f"The user wrote {asked}. I need {names} for this, so I will call them first."
    else:
        text = (
            f"The user wrote {asked}. A few short sentences will do, e.g. one fact, "
            "one number like 2.5 and a friendly close."
        )
    pieces = tokenize(text)
    budget = settings.get("token_budget")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        # The model stops thinking at its budget and goes on with the answer.
        pieces = pieces[:budget]
    return ContentBlock("thinking", request.hasher.tokens("thinking", pieces))


def _answer_plainly(question: str) -> str:
    return (
        f"Offline answer to {_quoted(question)}: no model was asked, so this reply is scripted. "
        "It exists for tests and demos, e.g. to show tokens arriving one by one. "
        "A typical reply like this one streams in 0.5 to 2.5 seconds. "
        "Set CO_API_KEY to talk to Cohere instead, and enjoy a café ☕ meanwhile."
    )


def _limit(
    blocks: list[ContentBlock], max_tokens: int | None, stop_sequences: list[str] | None
) -> tuple[tuple[ContentBlock, ...], str]:
    """Cut the content at the first stop sequence or after `max_tokens` tokens, if either comes."""
    finish_reason = "COMPLETE"
    text_block = blocks[-1]
    text = text_block.text
    found = [text.find(stop) for stop in stop_sequences or [] if stop and stop in text]
    if found:
        # The reply ends before the stop sequence, which is left out.
        blocks[-1] = _cut(text_block, min(found))
        finish_reason = "STOP_SEQUENCE"
    if max_tokens is not None and sum(len(block.tokens) for block in blocks) > max_tokens:
        finish_reason = "MAX_TOKENS"
        left = max_tokens
        for i, block in enumerate(blocks):
            blocks[i] = _cut(block, len("".join(t.text for t in block.tokens[:left])))
            left = max(0, left - len(block.tokens))
    return tuple(block for block in blocks if block.tokens), finish_reason


def _cut(block: ContentBlock, length: int) -> ContentBlock:
    tokens: list[Token] = []
    end = 0
    for token in block.tokens:
        if end >= length:
            break
        keep = token.text[: length - end]
        tokens.append(replace(token, text=keep))
        end += len(keep)
    citations = tuple(citation for citation in block.citations if citation.end <= length)
    return ContentBlock(block.kind, tuple(tokens), citations)


class _Answer:
    """Builds an answer text while tracking code-point offsets of the cited spans."""

    def __init__(self, opening: str) -> None:
        self.parts = [opening]
        self.length = len(opening)
        self.citations: list[Citation] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def cite(self, text: str, sources: Sequence[Mapping[str, Any]]) -> None:
        self.citations.append(Citation(self.length, self.length + len(text), text, tuple(sources)))
        self.add(text)

    def result(self) -> tuple[str, list[Citation]]:
        return "".join(self.parts), self.citations


def _snippet(text: str, words: int) -> str:
    return " ".join(_one_line(text, 400).split()[:words]).rstrip(".,;:!?…")


# --- Tools --------------------------------------------------------------------------------------


def _tool_call(request: _Request, index: int, tool: Mapping[str, Any]) -> ToolCall:
    name = str(tool["name"])
    call_id = f"{name}_{request.hasher.alnum(12, 'call', index, name)}"
    parameters = tool.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
    if not isinstance(properties, Mapping) or not properties:
        # A call without arguments sends no tool-call-delta at all (§3).
        return ToolCall(call_id, name, ())
    arguments = _fill_object(request, index, _mapping(parameters), depth=0)
    # Models emit either form (§3): the first call is pretty-printed, the second compact.
    indent = 4 if index % 2 == 0 else None
    text = json.dumps(arguments, indent=indent, ensure_ascii=False)
    return ToolCall(call_id, name, _fragments(request.hasher, index, text))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _fill_object(
    request: _Request,
    index: int,
    schema: Mapping[str, Any],
    depth: int,
    root: Mapping[str, Any] | None = None,
) -> _JSON:
    root = schema if root is None else root
    schema = _resolve(schema, root)
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or depth > (8 if request.structured else 3):
        return {}
    required = schema.get("required")
    filled: _JSON = {}
    for key, sub in properties.items():
        if (
            request.structured
            and isinstance(required, list)
            and key not in required
            and (depth >= 2 or request.hasher.number("optional", index, depth, key) % 3 == 0)
        ):
            continue  # a structured reply leaves some optional fields out, deep ones all
        filled[str(key)] = _fill_value(request, index, str(key), _mapping(sub), depth, root)
    return filled


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow ``$ref`` (``#/$defs/Name`` as pydantic writes it) and pick one ``anyOf`` branch."""
    for _ in range(32):  # a chain of references, not a loop of them
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = _mapping(target).get(part.replace("~1", "/").replace("~0", "~"))
            schema = {**_mapping(target), **{k: v for k, v in schema.items() if k != "$ref"}}
            continue
        options = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(options, list) and options:
            # Optional[X] is anyOf [X, null]: answer X, as a model mostly does.
            chosen = next((o for o in options if _mapping(o).get("type") != "null"), options[0])
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            schema = {**rest, **_mapping(chosen)}
            continue
        every = schema.get("allOf")
        if isinstance(every, list) and every:
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            for part in every:
                rest = {**rest, **_mapping(part)}
            schema = rest
            continue
        return schema
    return {}


def _fill_value(
    request: _Request,
    index: int,
    name: str,
    schema: Mapping[str, Any],
    depth: int,
    root: Mapping[str, Any] | None = None,
) -> Any:
    """A plausible value for one parameter, drawn from the question where it can be."""
    root = schema if root is None else root
    options = schema.get("anyOf") or schema.get("oneOf")
    if request.structured and depth >= 1 and isinstance(options, list):
        if any(_mapping(option).get("type") == "null" for option in options):
            return None  # deep down, Optional[X] is null: that is how recursion ends
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if kind == "object":
        return _fill_object(request, index, schema, depth + 1, root)
    if kind == "array":
        count = 1
        if request.structured and depth < 2:
            count = 1 + request.hasher.number("items", index, depth, name) % 3
        items = _mapping(schema.get("items"))
        return [_fill_value(request, index + i, name, items, depth, root) for i in range(count)]
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "integer":
        whole = [n for n in request.numbers if "." not in n]
        return int(whole[0]) if whole else 3
    if kind == "number":
        return float(request.numbers[0]) if request.numbers else 21.5
    lowered = name.lower()
    fmt = schema.get("format")
    if any(word in lowered for word in ("city", "location", "place", "town", "country", "where")):
        names = request.names
        return names[index % len(names)] if names else "Toronto"
    if fmt == "date-time" or "time" in lowered:
        return "2025-06-01T09:30:00Z"
    if fmt == "date" or "date" in lowered or "day" in lowered:
        return "2025-06-01"
    if fmt == "email" or "email" in lowered:
        return "someone@example.com"
    if fmt == "uri" or "url" in lowered or "link" in lowered:
        return "https://example.com/"
    if "unit" in lowered:
        return "celsius"
    if "lang" in lowered:
        return "en"
    if request.structured:
        return _structured_text(request, name)
    return request.question or "hello"


def _structured_text(request: _Request, name: str) -> str:
    """A short string for a field of a structured reply, with an escape or two in it."""
    words = [w for w in re.findall(r"[^\W\d_]+", request.question) if len(w) > 3]
    start = request.hasher.number("words", name) % max(1, len(words))
    picked = " ".join(words[start : start + 3]) or name.replace("_", " ")
    return f'{picked} ("{name}")' if request.hasher.number("quote", name) % 2 else picked


def _structured_reply(request: _Request, response_format: Mapping[str, Any]) -> str:
    """The JSON text of a reply in JSON mode: fits ``json_schema`` when one is given."""
    schema = response_format.get("json_schema")
    if isinstance(schema, Mapping):
        value: Any = _fill_value(request, 0, "answer", schema, -1)
    else:
        value = {"answer": _answer_plainly(request.question)}
    indent = 2 if request.hasher.number("indent") % 2 else None
    return json.dumps(value, indent=indent, ensure_ascii=False)


def _fragments(hasher: _Hasher, index: int, text: str) -> tuple[str, ...]:
    """Split argument JSON into 2–7 character fragments, some at the most awkward places."""
    cuts: set[int] = set()
    position = 0
    while position < len(text):
        position += 2 + hasher.number("cut", index, len(cuts)) % 6
        cuts.add(position)
    # Inside the first key, inside a number, and between a backslash and what it escapes.
    key = text.find('"')
    if key >= 0:
        cuts.add(key + 3)
    number = re.search(r": (-?\d[\d.eE+-]*\d)", text)
    if number is not None:
        cuts.add(number.start(1) + 1)
    backslash = text.find("\\")
    if backslash >= 0:
        cuts.add(backslash + 1)
    edges = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    return tuple(text[a:b] for a, b in zip(edges, edges[1:], strict=False))


def _trailing_tool_results(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    results: list[Mapping[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(message)
    return results[::-1]


def _as_object(value: Any) -> _JSON:
    """What a tool returned, as the object cited in ``tool_output``."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"text": value}
        return dict(parsed) if isinstance(parsed, dict) else {"text": value}
    return {"value": value}


def _tool_outputs(content: Any) -> list[_JSON]:
    if not isinstance(content, list):
        return [_as_object(content if content is not None else "")]
    outputs: list[_JSON] = []
    for item in content:
        if not isinstance(item, Mapping):
            outputs.append(_as_object(item))
        elif item.get("type") == "document" and isinstance(item.get("document"), Mapping):
            outputs.append(_as_object(item["document"].get("data", {})))
        else:
            outputs.append(_as_object(item.get("text", "")))
    return outputs


def _first_fact(output: Mapping[str, Any]) -> tuple[str, str] | None:
    for key, value in output.items():
        if isinstance(value, bool | int | float) or (isinstance(value, str) and value.strip()):
            shown = value if isinstance(value, str) else json.dumps(value)
            shown = _snippet(shown, 10)
            if shown:
                return str(key).replace("_", " "), shown
    return None


def _answer_tool_results(
    question: str,
    messages: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
) -> tuple[str, list[Citation]]:
    names: dict[str, str] = {}
    for message in messages:
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(call.get("id"), str):
                names[call["id"]] = str(function.get("name", "the tool"))
    answer = _Answer(f"Here is what the tools returned for {_quoted(question)}.")
    cited = 0
    for result in results:
        call_id = result["tool_call_id"]
        for n, output in enumerate(_tool_outputs(result.get("content"))):
            if cited == _MAX_CITED_RESULTS:
                break
            cited += 1
            source = {"type": "tool", "id": f"{call_id}:{n}", "tool_output": output}
            tool = names.get(call_id, "the tool")
            fact = _first_fact(output)
            if fact is None:
                answer.add(f" {tool[:1].upper()}{tool[1:]} returned ")
                answer.cite("no details", [source])
            else:
                answer.add(f" According to {tool}, the {fact[0]} is ")
                answer.cite(fact[1], [source])
            answer.add(".")
    return answer.result()


# --- Documents ----------------------------------------------------------------------------------


def _documents(documents: Sequence[Any]) -> Iterator[tuple[_JSON, str]]:
    """Each document as its source object, with the text to quote from it."""
    for position, document in enumerate(documents):
        doc_id = f"doc:{position}"
        if isinstance(document, Mapping):
            if isinstance(document.get("id"), str) and document["id"]:
                doc_id = document["id"]
            data = document.get("data", {k: v for k, v in document.items() if k != "id"})
            fields = dict(data) if isinstance(data, Mapping) else {"text": str(data)}
        else:
            fields = {"text": str(document)}
        fields.pop("id", None)
        text = next(
            (
                fields[key]
                for key in ("text", "snippet", "content", "body", "title")
                if isinstance(fields.get(key), str) and fields[key].strip()
            ),
            next((v for v in fields.values() if isinstance(v, str) and v.strip()), ""),
        )
        source = {"type": "document", "id": doc_id, "document": {"id": doc_id, **fields}}
        yield source, text or json.dumps(fields, ensure_ascii=False)


def _answer_documents(question: str, documents: Sequence[Any]) -> tuple[str, list[Citation]]:
    answer = _Answer(f"Here is what the documents say about {_quoted(question)}.")
    cited = 0
    for source, text in _documents(documents):
        quote = _snippet(text, 8)
        if not quote or cited == _MAX_CITED_DOCUMENTS:
            continue
        cited += 1
        answer.add(" One of them reads: " if cited == 1 else " Another adds: ")
        answer.cite(quote, [source])
        answer.add(".")
    if cited == 0:
        answer.add(" They hold no text to quote.")
    return answer.result()
