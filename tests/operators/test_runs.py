"""The event operators on a tool run: every step restarts its indices, nothing is mixed up.

A run (``streamkit.run_tools``) repeats the wire's indices in every step (tool call 0,
content block 0, citation 0), with a ``ToolResultEvent`` and a ``StepEndEvent`` between
steps. Each operator must read the steps one after the other, not fail on the repeats.
"""

from __future__ import annotations

from typing import Any

import reactivex
from reactivex import Observable
from reactivex import operators as ops

from operators import (
    assemble_tool_calls,
    final_message,
    metrics,
    pair_citations,
    snapshots,
    text_only,
    tool_call_progress,
    tool_plan,
)
from streamkit import (
    CHAT_EVENT_ADAPTER,
    ChatResponse,
    RunEvent,
    StepEndEvent,
    ToolResultEvent,
)


def _step(step: int, *, final: bool) -> list[RunEvent]:
    call = {"id": f"c{step}", "type": "function", "function": {"name": "f", "arguments": ""}}
    text = f"Answer {step}."
    citation = {"start": 0, "end": 6, "text": "Answer", "sources": [], "type": "TEXT_CONTENT"}
    wire: list[dict[str, Any]] = [
        {"type": "message-start", "id": f"m{step}", "delta": {"message": {"role": "assistant"}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": f"Plan {step}."}}},
        {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": call}}},
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": f'{{"n": {step}}}'}}}},
        },
        {"type": "tool-call-end", "index": 0},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text"}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}},
        {"type": "citation-start", "index": 0, "delta": {"message": {"citations": citation}}},
        {"type": "citation-end", "index": 0},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL"}},
    ]
    events: list[RunEvent] = [CHAT_EVENT_ADAPTER.validate_python(w) for w in wire]
    events.append(
        ToolResultEvent(step=step, tool_call_id=f"c{step}", name="f", arguments="{}", result=step)
    )
    events.append(
        StepEndEvent(step=step, response=ChatResponse(), stop_reason="max_steps" if final else None)
    )
    return events


def run() -> Observable[RunEvent]:
    return reactivex.from_iterable([*_step(1, final=False), *_step(2, final=True)])


def test_tool_calls_are_assembled_and_followed_step_by_step() -> None:
    calls = run().pipe(assemble_tool_calls(), ops.to_list()).run()
    assert [(c.id, c.parsed) for c in calls] == [("c1", {"n": 1}), ("c2", {"n": 2})]
    progress = run().pipe(tool_call_progress(), ops.to_list()).run()
    assert [(p.id, p.parsed) for p in progress] == [
        ("c1", {}),
        ("c1", {"n": 1}),
        ("c2", {}),
        ("c2", {"n": 2}),
    ]
    assert run().pipe(tool_plan(), ops.to_list()).run() == ["Plan 1.", "Plan 2."]


def test_citations_are_checked_against_their_own_steps_text() -> None:
    citations = run().pipe(pair_citations(), ops.to_list()).run()
    assert [(c.index, c.matches_text) for c in citations] == [(0, True), (0, True)]


def test_the_message_operators_fold_each_step_and_end_with_the_last() -> None:
    reply = run().pipe(final_message()).run()
    assert (reply.id, reply.text, reply.message.tool_plan) == ("m2", "Answer 2.", "Plan 2.")
    texts = [s.text for s in run().pipe(snapshots(), ops.to_list()).run()]
    assert texts[12] == "Answer 1." and texts[13] == "" and texts[-1] == "Answer 2."
    assert run().pipe(text_only(), ops.to_list()).run() == ["Answer 1.", "Answer 2."]


def test_metrics_count_the_chat_events_of_every_step() -> None:
    summary = run().pipe(metrics()).run()
    assert summary.token_count == 6  # per step: a plan piece, an argument piece, a text piece
    assert summary.event_count == 22  # the run's own events are not stream events
