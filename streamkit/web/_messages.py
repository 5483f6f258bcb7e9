"""AI SDK ``UIMessage`` lists (what ``useChat`` POSTs) to Cohere V2 ``messages``: pure.

The shapes are those of ``ai`` 6.x (``src/ui/ui-messages.ts``): a message is ``{id, role,
parts}`` with ``role`` one of ``system``, ``user``, ``assistant``; a part is ``text``,
``reasoning``, ``file``, ``step-start``, ``source-*``, ``data-*``, ``tool-<name>`` or
``dynamic-tool``. An assistant message holds one or more steps (split by ``step-start``);
each step whose tools have run becomes a Cohere assistant message with ``tool_calls``
followed by one ``tool`` message per call (cohere-v2-stream.md, and Cohere's tool-use guide).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from streamkit.errors import InvalidUIMessageError

__all__ = ["ui_messages_to_cohere"]

_ROLES = ("system", "user", "assistant")
# Parts that carry nothing Cohere reads back: UI bookkeeping and what the answer cited.
_SKIPPED = ("step-start", "source-url", "source-document")
_ANSWERED = ("output-available", "output-error", "output-denied")


def ui_messages_to_cohere(
    messages: Sequence[Mapping[str, Any]] | Mapping[str, Any], *, keep_reasoning: bool = False
) -> list[dict[str, Any]]:
    """Convert AI SDK ``UIMessage`` objects to Cohere V2 chat ``messages``.

    Text parts become the message's ``content`` (a string); a ``file`` part with an
    ``image/*`` media type becomes an ``image_url`` part of a user message. In an assistant
    message, each step's tool parts whose state is ``output-available`` (or
    ``output-error``/``output-denied``) become ``tool_calls`` (the step's text is their
    ``tool_plan``) followed by ``tool`` messages with the tool's output; tool calls that have
    not run yet are left out (Cohere needs a result for every call). ``data-*``, source and
    ``step-start`` parts are UI-only and dropped.

    Example:
        >>> ui_messages_to_cohere([{"id": "1", "role": "user",
        ...     "parts": [{"type": "text", "text": "Hi"}]}])
        [{'role': 'user', 'content': 'Hi'}]

    Args:
        messages: The ``messages`` list of the request body, or the whole body
            (``{"id", "messages", "trigger", ...}``).
        keep_reasoning: Send ``reasoning`` parts back as ``thinking`` content (off by
            default: Cohere does not need its own thinking back).

    Returns:
        The Cohere V2 ``messages`` list.

    Raises:
        InvalidUIMessageError: A message or part is not a valid ``UIMessage`` shape.
    """
    if isinstance(messages, Mapping):
        if "messages" not in messages:
            raise InvalidUIMessageError("the request body has no 'messages' list")
        messages = messages["messages"]
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidUIMessageError(f"messages must be a list, not {type(messages).__name__}")
    converted: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if not isinstance(message, Mapping):
            raise InvalidUIMessageError(f"{where} must be an object with 'role' and 'parts'")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidUIMessageError(
                f"{where}.role must be one of 'system', 'user', 'assistant', not {role!r}"
            )
        parts = message.get("parts")
        if not isinstance(parts, list):
            raise InvalidUIMessageError(f"{where}.parts must be a list of parts")
        for index, part in enumerate(parts):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise InvalidUIMessageError(
                    f"{where}.parts[{index}] must be an object with a 'type'"
                )
        if role == "assistant":
            converted.extend(_assistant(where, parts, keep_reasoning=keep_reasoning))
        else:
            converted.append(_user_or_system(where, role, parts))
    return converted


def _text(where: str, part: Mapping[str, Any], key: str = "text") -> str:
    value = part.get(key)
    if not isinstance(value, str):
        raise InvalidUIMessageError(f"{where}.{key} must be a string")
    return value


def _user_or_system(where: str, role: str, parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        here = f"{where}.parts[{index}]"
        kind = part["type"]
        if kind == "text":
            texts.append(_text(here, part))
        elif kind == "file" and role == "user":
            url, media_type = part.get("url"), part.get("mediaType")
            if not isinstance(url, str) or not isinstance(media_type, str):
                raise InvalidUIMessageError(f"{here} must have 'url' and 'mediaType' strings")
            if not media_type.startswith("image/"):
                raise InvalidUIMessageError(
                    f"{here}.mediaType {media_type!r} is not an image: Cohere takes images only"
                )
            images.append({"type": "image_url", "image_url": {"url": url}})
        elif kind in _SKIPPED or kind.startswith("data-"):
            continue
        else:
            raise InvalidUIMessageError(f"{here}.type {kind!r} is not a part of {role} messages")
    text = "".join(texts)
    if images:
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        return {"role": role, "content": [*content, *images]}
    return {"role": role, "content": text}


def _assistant(
    where: str, parts: list[Mapping[str, Any]], *, keep_reasoning: bool
) -> list[dict[str, Any]]:
    steps: list[list[tuple[str, Mapping[str, Any]]]] = [[]]
    for index, part in enumerate(parts):
        if part["type"] == "step-start":
            if steps[-1]:
                steps.append([])
            continue
        steps[-1].append((f"{where}.parts[{index}]", part))
    converted: list[dict[str, Any]] = []
    for step in steps:
        converted.extend(_step(step, keep_reasoning=keep_reasoning))
    return converted


def _step(
    step: list[tuple[str, Mapping[str, Any]]], *, keep_reasoning: bool
) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for here, part in step:
        kind = part["type"]
        if kind == "text":
            texts.append(_text(here, part))
        elif kind == "reasoning":
            thinking = _text(here, part)
            if keep_reasoning and thinking:
                content.append({"type": "thinking", "thinking": thinking})
        elif kind == "dynamic-tool" or kind.startswith("tool-"):
            call = _tool_call(here, part)
            if call is not None:
                calls.append(call[0])
                results.append(call[1])
        elif kind in _SKIPPED or kind.startswith("data-") or kind == "file":
            continue
        else:
            raise InvalidUIMessageError(f"{here}.type {kind!r} is not a part of assistant messages")
    text = "".join(texts)
    if calls:
        message: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
        if text:
            message["tool_plan"] = text
        if content:
            message["content"] = content
        return [message, *results]
    if text:
        content.append({"type": "text", "text": text})
    if not content:
        return []
    if len(content) == 1 and content[0]["type"] == "text":
        return [{"role": "assistant", "content": text}]
    return [{"role": "assistant", "content": content}]


def _tool_call(here: str, part: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    kind = part["type"]
    name = part.get("toolName") if kind == "dynamic-tool" else kind[len("tool-") :]
    call_id = part.get("toolCallId")
    if not isinstance(name, str) or not name:
        raise InvalidUIMessageError(f"{here} has no tool name")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidUIMessageError(f"{here}.toolCallId must be a non-empty string")
    state = part.get("state")
    if state not in _ANSWERED:
        return None  # not run yet: Cohere needs a result for every call it is sent
    if state == "output-available":
        output: Any = part.get("output")
    elif state == "output-error":
        output = {"error": part.get("errorText") or "the tool failed"}
    else:
        output = {"error": "the user denied this tool call"}
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(part.get("input") or {})},
    }
    if isinstance(output, str):
        content: Any = output
    else:
        content = [{"type": "document", "document": {"data": json.dumps(output)}}]
    return call, {"role": "tool", "tool_call_id": call_id, "content": content}
