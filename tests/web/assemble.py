"""What a browser would assemble from UI message chunks, and what streamkit folds: comparable."""

from __future__ import annotations

import json
from typing import Any

import reactivex

from streamkit import ChatEvent, ChatResponse, to_iterator
from streamkit.errors import StreamError
from streamkit.web import UIMessageStreamEncoder


def encode_all(stream: reactivex.Observable[ChatEvent]) -> list[dict[str, Any]]:
    """Every chunk the encoder makes of ``stream``, as ui_message_stream_response sends them."""
    encoder = UIMessageStreamEncoder()
    chunks: list[dict[str, Any]] = []
    try:
        with to_iterator(stream) as events:
            for event in events:
                chunks.extend(encoder.encode(event))
                if encoder.ended:
                    break
            else:
                chunks.extend(encoder.finish())
    except Exception as error:
        chunks.extend(encoder.fail(error))
    return chunks


def summary_of_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Text, reasoning, tool plan, tool calls, citations and errors the chunks carry."""
    texts: dict[str, str] = {}
    plan = ""
    reasoning: dict[str, str] = {}
    calls: list[dict[str, Any]] = []
    citations: list[dict[str, Any]] = []
    errors: list[str] = []
    sources: dict[str, str] = {}
    for chunk in chunks:
        kind = chunk["type"]
        if kind == "text-start":
            texts[chunk["id"]] = ""
        elif kind == "text-delta":
            texts[chunk["id"]] += chunk["delta"]
        elif kind == "reasoning-start":
            reasoning[chunk["id"]] = ""
        elif kind == "reasoning-delta":
            reasoning[chunk["id"]] += chunk["delta"]
        elif kind == "tool-input-available":
            calls.append(
                {"id": chunk["toolCallId"], "name": chunk["toolName"], "input": chunk["input"]}
            )
        elif kind in ("source-document", "source-url"):
            sources[chunk["sourceId"]] = kind
        elif kind == "data-citation":
            data = chunk["data"]
            citations.append({k: data[k] for k in ("start", "end", "text", "sources")})
        elif kind == "error":
            errors.append(chunk["errorText"])
    plan = texts.pop("tool-plan", "")
    assert all(source in sources for c in citations for source in c["sources"])
    return {
        "text": "".join(texts.values()),
        "reasoning": "".join(reasoning.values()),
        "tool_plan": plan,
        "tool_calls": calls,
        "citations": citations,
        "errors": errors,
    }


def summary_of_message(response: ChatResponse) -> dict[str, Any]:
    """The same summary of streamkit's own fold of the stream."""
    message = response.message
    return {
        "text": message.text,
        "reasoning": message.thinking,
        "tool_plan": message.tool_plan or "",
        "tool_calls": [
            {
                "id": call.id,
                "name": call.function.name,
                "input": json.loads(call.function.arguments or "{}"),
            }
            for call in message.tool_calls or []
        ],
        "citations": [
            {
                "start": c.start,
                "end": c.end,
                "text": c.text,
                "sources": [s.id for s in c.sources],
            }
            for c in message.citations or []
        ],
    }


def fold(stream: Any) -> tuple[ChatResponse, str | None]:
    """streamkit's final message of ``stream`` (the partial one on failure) and the error."""
    try:
        return stream.final_message(), None
    except StreamError as error:
        assert error.partial_message is not None
        return error.partial_message, str(error)
