"""Cohere chat events to the Vercel AI SDK's UI message stream: pure, sans-IO.

The AI SDK (``ai`` 6.x, ``src/ui-message-stream/ui-message-chunks.ts``) reads a stream of
JSON "chunks" sent as SSE ``data:`` lines, ended by ``data: [DONE]``, on a response with the
header ``x-vercel-ai-ui-message-stream: v1``. `UIMessageStreamEncoder` turns each Cohere
event into the chunks it stands for; it never touches a socket, a clock or a thread.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import httpx

from streamkit._events import (
    ChatEvent,
    CitationEndEvent,
    CitationStartEvent,
    ContentDeltaEvent,
    ContentEndEvent,
    ContentStartEvent,
    DebugEvent,
    ErrorEvent,
    MessageEndEvent,
    MessageStartEvent,
    Source,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolPlanDeltaEvent,
    UnknownEvent,
    event_to_dict,
)
from streamkit.errors import ServerStreamError, StreamkitError

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

__all__ = [
    "UI_MESSAGE_STREAM_HEADERS",
    "UIMessageStreamEncoder",
    "encode_sse_data",
    "encode_sse_event",
    "error_text",
]

UI_MESSAGE_STREAM_HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}
"""The headers the AI SDK sends with a UI message stream (its ``UI_MESSAGE_STREAM_HEADERS``)."""

DONE = b"data: [DONE]\n\n"
"""The SSE event that ends both a UI message stream and a Cohere stream."""

KEEP_ALIVE = b": keep-alive\n\n"
"""An SSE comment line: readers ignore it (WHATWG HTML §9.2.6), proxies see traffic."""

GENERIC_ERROR = "An error occurred."
"""The text sent for a failure that is not streamkit's or httpx's (the AI SDK's own default):
an unexpected exception's message may hold anything, so it stays in the server's log."""

# Cohere's finish reasons (cohere-v2-stream.md §3) as the AI SDK's `finishReason` enum.
_FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool-calls",
    "ERROR": "error",
}

TOOL_PLAN_METADATA: Mapping[str, Any] = {"cohere": {"toolPlan": True}}
"""The ``providerMetadata`` of the text part that carries a Cohere tool plan."""


def encode_sse_data(chunk: Mapping[str, Any]) -> bytes:
    """One UI message chunk as an SSE event: ``data: <one-line JSON>`` and a blank line."""
    return b"data: %s\n\n" % _dump(chunk)


def encode_sse_event(event: ChatEvent) -> bytes:
    """One Cohere event as Cohere frames it: ``event: <type>``, ``data: <JSON>``, a blank line."""
    # `type` first and always present: a model built in code has it only as a default.
    payload = {"type": event.type, **event_to_dict(event)}
    return b"event: %s\ndata: %s\n\n" % (event.type.encode(), _dump(payload))


def error_text(error: BaseException) -> str:
    """What a browser may be told about a failure: streamkit's and httpx's messages only.

    streamkit's messages are already masked (no keys, no headers); an in-stream error says the
    server's reason.
    """
    if isinstance(error, ServerStreamError) and error.error:
        return error.error
    if isinstance(error, (StreamkitError, httpx.HTTPError)):
        return str(error) or type(error).__name__
    return GENERIC_ERROR


class UIMessageStreamEncoder:
    """Turns Cohere chat events into AI SDK UI message chunks (plain JSON-able dicts).

    Feed every event to `encode`, then call `finish` when the stream completed or `fail` when
    it raised; each returns the chunks to send, in order. The mapping:

    - ``message-start`` → ``start`` (``messageId`` = Cohere's id) and ``start-step``;
    - a ``text`` block → ``text-start``/``text-delta``/``text-end``; a ``thinking`` block →
      ``reasoning-start``/``reasoning-delta``/``reasoning-end``; the tool plan → a text part
      whose ``providerMetadata`` is `TOOL_PLAN_METADATA`;
    - a tool call → ``tool-input-start``, one ``tool-input-delta`` per argument fragment, then
      ``tool-input-available`` with the parsed arguments (``{}`` for none; invalid JSON →
      ``tool-input-error``);
    - a citation → a ``source-url`` (a document with a ``url``) or ``source-document`` for
      each source not sent before, then ``data-citation`` with ``{start, end, text, sources,
      type}``, ``sources`` being the source ids;
    - ``message-end`` → ``finish-step`` and ``finish`` with the AI SDK's ``finishReason`` and
      ``messageMetadata`` = ``{"finishReason": <Cohere's>, "usage": <Cohere's usage>}``;
    - a ``message-end`` with ``finish_reason: "ERROR"``, an ``error`` event, or `fail` → an
      ``error`` chunk with the reason; nothing is encoded after it.

    The terminating ``data: [DONE]`` is the response's job (see `encode_sse_data`).
    """

    def __init__(self) -> None:
        self._started = False
        self._step_open = False
        self._ended = False
        self._blocks: dict[int, tuple[str, str]] = {}  # content index -> (part kind, part id)
        self._plan_id: str | None = None
        self._calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> (id, name, args)
        self._sources: set[str] = set()

    @property
    def ended(self) -> bool:
        """Whether a ``finish`` or ``error`` chunk was produced: the stream is over."""
        return self._ended

    def encode(self, event: ChatEvent) -> list[dict[str, Any]]:
        """The chunks one Cohere event stands for (often none or one)."""
        if self._ended:
            return []
        chunks: list[dict[str, Any]] = []
        if not isinstance(event, MessageStartEvent):
            chunks.extend(self._start(None))
        match event:
            case MessageStartEvent():
                chunks.extend(self._start(event.id))
            case ContentStartEvent():
                chunks.extend(self._end_plan())
                content = event.delta.message.content
                kind = "reasoning" if content.type == "thinking" else "text"
                part_id = f"{kind}-{event.index}"
                self._blocks[event.index] = (kind, part_id)
                chunks.append({"type": f"{kind}-start", "id": part_id})
                first = content.thinking if kind == "reasoning" else content.text
                if first:
                    chunks.append({"type": f"{kind}-delta", "id": part_id, "delta": first})
            case ContentDeltaEvent():
                kind, part_id = self._blocks.get(event.index) or self._implicit_block(event, chunks)
                piece = event.delta.message.content
                delta = piece.thinking if kind == "reasoning" else piece.text
                if delta:
                    chunks.append({"type": f"{kind}-delta", "id": part_id, "delta": delta})
            case ContentEndEvent():
                block = self._blocks.pop(event.index, None)
                if block is not None:
                    chunks.append({"type": f"{block[0]}-end", "id": block[1]})
            case ToolPlanDeltaEvent():
                if self._plan_id is None:
                    self._plan_id = "tool-plan"
                    chunks.append(
                        {
                            "type": "text-start",
                            "id": self._plan_id,
                            "providerMetadata": dict(TOOL_PLAN_METADATA),
                        }
                    )
                plan = event.delta.message.tool_plan
                if plan:
                    chunks.append({"type": "text-delta", "id": self._plan_id, "delta": plan})
            case ToolCallStartEvent():
                chunks.extend(self._end_plan())
                call = event.delta.message.tool_calls
                call_id = call.id or f"call-{event.index}"
                self._calls[event.index] = (call_id, call.function.name, [])
                chunks.append(
                    {
                        "type": "tool-input-start",
                        "toolCallId": call_id,
                        "toolName": call.function.name,
                    }
                )
                if call.function.arguments:
                    chunks.extend(self._arguments(event.index, call.function.arguments))
            case ToolCallDeltaEvent():
                fragment = event.delta.message.tool_calls.function.arguments
                if event.index in self._calls and fragment:
                    chunks.extend(self._arguments(event.index, fragment))
            case ToolCallEndEvent():
                if event.index in self._calls:
                    chunks.append(self._tool_input(*self._calls.pop(event.index)))
            case CitationStartEvent():
                chunks.extend(self._citation(event))
            case CitationEndEvent() | DebugEvent() | UnknownEvent():
                pass  # nothing a browser shows; unknown events stay on the Cohere SSE route
            case MessageEndEvent():
                chunks.extend(self._message_end(event))
            case ErrorEvent():
                message = event.message or (event.error if isinstance(event.error, str) else "")
                chunks.extend(self._error(message or "The server reported an error."))
            case _:
                assert_never(event)
        return chunks

    def finish(self) -> list[dict[str, Any]]:
        """The chunks that end a stream that completed without a ``message-end`` of its own."""
        if self._ended:
            return []
        chunks = [*self._start(None), *self._close_parts()]
        if self._step_open:
            self._step_open = False
            chunks.append({"type": "finish-step"})
        self._ended = True
        chunks.append({"type": "finish"})
        return chunks

    def fail(self, error: BaseException) -> list[dict[str, Any]]:
        """The chunks that end a stream that failed with ``error`` (see `error_text`)."""
        if self._ended:
            return []
        return [*self._start(None), *self._error(error_text(error))]

    # ------------------------------------------------------------------------- helpers

    def _start(self, message_id: str | None) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        self._step_open = True
        start: dict[str, Any] = {"type": "start"}
        if message_id:
            start["messageId"] = message_id
        return [start, {"type": "start-step"}]

    def _implicit_block(
        self, event: ContentDeltaEvent, chunks: list[dict[str, Any]]
    ) -> tuple[str, str]:
        # A delta without its content-start: its kind is whichever key it has (§3).
        kind = "reasoning" if event.delta.message.content.thinking is not None else "text"
        block = (kind, f"{kind}-{event.index}")
        self._blocks[event.index] = block
        chunks.append({"type": f"{kind}-start", "id": block[1]})
        return block

    def _end_plan(self) -> list[dict[str, Any]]:
        if self._plan_id is None:
            return []
        plan_id, self._plan_id = self._plan_id, None
        return [{"type": "text-end", "id": plan_id}]

    def _arguments(self, index: int, fragment: str) -> list[dict[str, Any]]:
        call_id, _, arguments = self._calls[index]
        arguments.append(fragment)
        return [{"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": fragment}]

    @staticmethod
    def _tool_input(call_id: str, name: str, arguments: list[str]) -> dict[str, Any]:
        raw = "".join(arguments)
        try:
            # A call without arguments sends no delta at all: its input is {} (§3).
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError as error:
            return {
                "type": "tool-input-error",
                "toolCallId": call_id,
                "toolName": name,
                "input": raw,
                "errorText": f"the arguments of tool call {call_id} are not valid JSON: {error}",
            }
        return {
            "type": "tool-input-available",
            "toolCallId": call_id,
            "toolName": name,
            "input": parsed,
        }

    def _citation(self, event: CitationStartEvent) -> list[dict[str, Any]]:
        citation = event.delta.message.citations
        chunks: list[dict[str, Any]] = []
        ids: list[str] = []
        for position, source in enumerate(citation.sources):
            source_id = source.id or f"citation-{event.index}-source-{position}"
            ids.append(source_id)
            if source_id not in self._sources:
                self._sources.add(source_id)
                chunks.append(_source_chunk(source_id, source))
        data: dict[str, Any] = {
            "start": citation.start,
            "end": citation.end,
            "text": citation.text,
            "sources": ids,
        }
        if citation.type is not None:
            data["type"] = citation.type
        if citation.content_index is not None:
            data["contentIndex"] = citation.content_index
        chunks.append({"type": "data-citation", "id": f"citation-{event.index}", "data": data})
        return chunks

    def _message_end(self, event: MessageEndEvent) -> list[dict[str, Any]]:
        delta = event.delta
        if delta.finish_reason == "ERROR" or delta.error:
            return self._error(delta.error or "The server ended the stream with an error.")
        chunks = self._close_parts()
        if self._step_open:
            self._step_open = False
            chunks.append({"type": "finish-step"})
        metadata: dict[str, Any] = {"finishReason": delta.finish_reason}
        if delta.usage is not None:
            metadata["usage"] = delta.usage.model_dump(mode="json", exclude_none=True)
        self._ended = True
        chunks.append(
            {
                "type": "finish",
                "finishReason": _FINISH_REASONS.get(delta.finish_reason or "", "other"),
                "messageMetadata": metadata,
            }
        )
        return chunks

    def _close_parts(self) -> list[dict[str, Any]]:
        chunks = self._end_plan()
        for kind, part_id in self._blocks.values():
            chunks.append({"type": f"{kind}-end", "id": part_id})
        self._blocks.clear()
        for call in self._calls.values():
            chunks.append(self._tool_input(*call))
        self._calls.clear()
        return chunks

    def _error(self, message: str) -> list[dict[str, Any]]:
        self._ended = True
        return [{"type": "error", "errorText": message}]


def _source_chunk(source_id: str, source: Source) -> dict[str, Any]:
    fields: Mapping[str, Any] = source.document or source.tool_output or {}
    title = fields.get("title")
    url = fields.get("url")
    if isinstance(url, str) and url:
        chunk: dict[str, Any] = {"type": "source-url", "sourceId": source_id, "url": url}
        if isinstance(title, str):
            chunk["title"] = title
        return chunk
    return {
        "type": "source-document",
        "sourceId": source_id,
        "mediaType": "text/plain" if source.type == "document" else "application/json",
        "title": title if isinstance(title, str) and title else source_id,
    }


def _dump(payload: Mapping[str, Any]) -> bytes:
    # One line, raw UTF-8: SSE data may hold any character but a line break (WHATWG §9.2.5).
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
