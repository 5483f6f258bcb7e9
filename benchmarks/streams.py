"""A protocol-faithful generator of Cohere V2 chat stream bodies, from 1k to 1M events.

Every contender in the benchmarks reads the same bytes. A generated reply follows the order
of ``cohere-v2-stream.md`` §2 with all three kinds of payload the operators care about::

    message-start
      tool-plan-delta*                       ~2% of the events
      (tool-call-start tool-call-delta* tool-call-end)*
                                             ~10%: JSON arguments cut into 2-9 character
                                             fragments, compact or pretty-printed
      content-start
        content-delta*                       the rest: token pieces with leading spaces,
                                             JSON escapes and raw non-ASCII UTF-8
        (citation-start citation-end)*       ~4%: spans of the block's text, after its last
                                             delta (as in every real recording)
      content-end
    message-end
    data: [DONE]

(A real non-reasoning model's tool-calling turn has no content blocks; the grammar allows
both in one turn, and one body then exercises every operator.) Framing is Cohere's: an
``event:`` line equal to the JSON ``type``, one compact JSON ``data:`` line, a blank line;
one chunk per event, as tokens arrive on a live connection.

The reply also records what it must decode to (the answer text, the tool calls, the
citation spans), so that the benchmarks can check every contender's output before timing
it. Token pieces come from a small vocabulary whose encoded events are built once and
shared, so a million-event reply costs little memory to hold and seconds to build.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reply", "ToolCallSpec", "make_reply", "payloads_of"]

_WORDS = (
    "the tower was built for the world fair in and it is still one of most visited "
    "monuments on earth its iron lattice weighs about tonnes engineers painted every "
    "seven years river seine city council voted keep structure after radio antennas "
    "proved useful today millions people climb stairs or take lifts to top"
).split()
# Pieces that exercise the decoders: raw non-ASCII, astral characters, JSON escapes.
_SPECIAL = [" café", " naïve", " 東京", " Zürich", " 🙂", ' "quoted"', " back\\slash", " tab\t"]
_ENDS = [".", ".", ".", "!", "?"]

_TOOLS = (
    ("get_weather", {"city": "Paris", "units": "celsius", "days": 3}),
    ("search_docs", {"query": "Eiffel tower height", "top_k": 5, "filters": {"lang": "en"}}),
    ("book_table", {"restaurant": "Le Jules Verne", "party": 4, "time": "19:30", "ok": True}),
)

_DOCUMENT = {
    "id": "doc:0",
    "title": "Eiffel Tower",
    "text": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris.",
}


@dataclass(frozen=True)
class ToolCallSpec:
    """A tool call as it must come out of the stream."""

    id: str
    name: str
    arguments: str


@dataclass
class Reply:
    """One generated response body and what it must decode to."""

    chunks: list[bytes]
    """The body, one chunk per event, ``data: [DONE]`` last."""
    text: str
    """The answer: every ``content-delta`` text joined."""
    tool_plan: str
    """Every ``tool-plan-delta`` joined."""
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    """The calls, in index order, with their joined arguments."""
    citations: list[tuple[int, int, str]] = field(default_factory=list)
    """Each citation's ``(start, end, text)``, in index order."""
    events: int = 0
    """How many events the body holds (``[DONE]`` excluded)."""

    def body(self) -> bytes:
        """The whole body as one bytes object."""
        return b"".join(self.chunks)

    def payloads(self) -> list[str]:
        """Every event's JSON text, in order (what a decoder hands to its JSON parser)."""
        return list(payloads_of(self.chunks))


def payloads_of(chunks: list[bytes]) -> Iterator[str]:
    """The ``data:`` payloads of a generated body, read without any SSE decoder."""
    for chunk in chunks:
        start = chunk.index(b"data: ") + len(b"data: ")
        payload = chunk[start : chunk.index(b"\n", start)].decode()
        if payload != "[DONE]":
            yield payload


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _frame(payload: str, kind: str) -> bytes:
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def _delta_chunk(piece: str) -> bytes:
    return _frame(
        '{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":'
        + _dumps(piece)
        + "}}}}",
        "content-delta",
    )


def _split(text: str, rng: random.Random, low: int, high: int) -> list[str]:
    pieces: list[str] = []
    at = 0
    while at < len(text):
        size = rng.randint(low, high)
        pieces.append(text[at : at + size])
        at += size
    return pieces


def make_reply(events: int, *, seed: int = 7) -> Reply:
    """Generate a reply of exactly ``events`` events (at least 100).

    The same ``events`` and ``seed`` always give the same bytes.
    """
    if events < 100:
        raise ValueError("a generated reply has at least 100 events")
    rng = random.Random(seed)
    vocabulary = [" " + word for word in _WORDS] + _SPECIAL
    # Encoded once per distinct piece: a long reply shares these bytes objects.
    cache: dict[str, bytes] = {}

    def delta(piece: str) -> bytes:
        chunk = cache.get(piece)
        if chunk is None:
            chunk = cache[piece] = _delta_chunk(piece)
        return chunk

    chunks: list[bytes] = [
        _frame(
            '{"id":"5d1c7a52-0b0e-4f6e-9d5b-3f1a2b3c4d5e","type":"message-start","delta":'
            '{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],'
            '"citations":[]}}}',
            "message-start",
        )
    ]

    plan_events = max(1, events // 50)
    plan_pieces = [rng.choice(vocabulary) for _ in range(plan_events)]
    for piece in plan_pieces:
        chunks.append(
            _frame(
                '{"type":"tool-plan-delta","delta":{"message":{"tool_plan":'
                + _dumps(piece)
                + "}}}",
                "tool-plan-delta",
            )
        )

    calls: list[ToolCallSpec] = []
    tool_budget = events // 10
    used = 0
    while used < tool_budget:
        index = len(calls)
        name, arguments = _TOOLS[index % len(_TOOLS)]
        # Models emit compact or pretty-printed JSON (cohere-v2-stream.md §3).
        text = json.dumps(arguments, indent=4 if index % 2 else None)
        call_id = f"{name}_{rng.getrandbits(40):010x}"
        fragments = _split(text, rng, 2, 9)
        chunks.append(
            _frame(
                f'{{"type":"tool-call-start","index":{index},"delta":{{"message":{{"tool_calls":'
                f'{{"id":"{call_id}","type":"function","function":{{"name":"{name}",'
                f'"arguments":""}}}}}}}}}}',
                "tool-call-start",
            )
        )
        for fragment in fragments:
            chunks.append(
                _frame(
                    f'{{"type":"tool-call-delta","index":{index},"delta":{{"message":'
                    f'{{"tool_calls":{{"function":{{"arguments":{_dumps(fragment)}}}}}}}}}}}',
                    "tool-call-delta",
                )
            )
        chunks.append(_frame(f'{{"type":"tool-call-end","index":{index}}}', "tool-call-end"))
        calls.append(ToolCallSpec(call_id, name, text))
        used += len(fragments) + 2

    citation_pairs = max(1, events // 50)
    # What is left after message-start/end, content-start/end, the plan, the calls and the
    # citations goes to text deltas.
    delta_events = events - 4 - plan_events - used - 2 * citation_pairs
    chunks.append(
        _frame(
            '{"type":"content-start","index":0,"delta":{"message":{"content":'
            '{"type":"text","text":""}}}}',
            "content-start",
        )
    )
    pieces: list[str] = []
    sentence = 0
    for _ in range(delta_events):
        if sentence >= 8 and rng.random() < 0.12:
            piece = rng.choice(_ENDS)
            sentence = 0
        else:
            piece = vocabulary[rng.randrange(len(vocabulary))]
            if rng.random() < 0.04:
                piece = rng.choice(_SPECIAL)
            sentence += 1
        pieces.append(piece)
        chunks.append(delta(piece))
    text = "".join(pieces)

    # Citation spans: one to three whole pieces, without the first one's leading space.
    offsets = [0]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    citations: list[tuple[int, int, str]] = []
    source = {"type": "document", "id": "doc:0", "document": _DOCUMENT}
    for index in range(citation_pairs):
        first = rng.randrange(len(pieces))
        last = min(len(pieces) - 1, first + rng.randrange(3))
        start = offsets[first] + (1 if pieces[first].startswith(" ") else 0)
        end = offsets[last + 1]
        if start >= end:
            start = offsets[first]
        span = text[start:end]
        citation = {
            "start": start,
            "end": end,
            "text": span,
            "sources": [source],
            "type": "TEXT_CONTENT",
        }
        citations.append((start, end, span))
        chunks.append(
            _frame(
                f'{{"type":"citation-start","index":{index},"delta":{{"message":'
                f'{{"citations":{_dumps(citation)}}}}}}}',
                "citation-start",
            )
        )
        chunks.append(_frame(f'{{"type":"citation-end","index":{index}}}', "citation-end"))
    chunks.append(_frame('{"type":"content-end","index":0}', "content-end"))
    chunks.append(
        _frame(
            '{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":'
            f'{{"billed_units":{{"input_tokens":9,"output_tokens":{events}}},'
            f'"tokens":{{"input_tokens":215,"output_tokens":{events}}},"cached_tokens":0}}}}}}',
            "message-end",
        )
    )
    chunks.append(b"data: [DONE]\n\n")
    return Reply(
        chunks=chunks,
        text=text,
        tool_plan="".join(plan_pieces),
        tool_calls=calls,
        citations=citations,
        events=len(chunks) - 1,
    )
