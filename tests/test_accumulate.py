"""The accumulator behind every partial message: linear, and compact in memory."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

from streamkit import ChatEventDecoder, MessageAccumulator, from_events, to_iterator


def wire(n: int) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {"id": "m", "type": "message-start", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "p"}}},
    ]
    events += [
        {
            "type": "content-delta",
            "index": 0,
            "delta": {"message": {"content": {"text": f" t{i % 10}"}}},
        }
        for i in range(n)
    ]
    events += [
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {}}},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def test_text_is_exact_across_many_compactions() -> None:
    chunks = wire(10_000)
    decoder = ChatEventDecoder()
    for chunk in chunks:
        list(decoder.feed(chunk))
    decoder.finish()
    expected = "".join(f" t{i % 10}" for i in range(10_000))
    assert decoder.accumulator.text == expected
    assert decoder.accumulator.snapshot().text == expected
    # Snapshots taken mid-stream stay exact too.
    accumulator = MessageAccumulator()
    events = list(to_iterator(from_events([json.loads(c.split(b"data: ", 1)[1]) for c in chunks])))
    for i, event in enumerate(events):
        accumulator.add(event)
        if i % 997 == 0:
            assert accumulator.snapshot().text == expected[: len(accumulator.text)]


def test_the_partial_message_costs_about_its_text_in_memory() -> None:
    # Each delta's str object alone would cost ~50 bytes; the pieces are joined in runs, so a
    # long reply keeps roughly its characters (5 per delta here) plus a little.
    chunks = wire(50_000)
    tracemalloc.start()
    try:
        decoder = ChatEventDecoder()
        for chunk in chunks:
            for _ in decoder.feed(chunk):
                pass
        decoder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / 50_000 < 20


def test_pieces_are_joined_once_in_runs_never_rejoined() -> None:
    # Linear building: each run of 64 pieces is joined once, and a joined run is never
    # copied again until the text is read (re-joining a growing run would be quadratic).
    from streamkit._accumulate import _Text

    text = _Text()
    for _ in range(64 * 100 + 5):
        text.append("ab")
    runs = text._runs
    assert len(runs) == 100 and all(len(run) == 128 for run in runs)
    assert text.value() == "ab" * (64 * 100 + 5)
    text.append("!")
    assert text.value().endswith("ab!") and len(text.value()) == 2 * (64 * 100 + 5) + 1
