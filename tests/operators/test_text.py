from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops

from operators import accumulate_text, text_only, thinking_only
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent, from_sse_file
from tests.operators.matrix import Case, Check, docstring_marbles, matrix


def delta(**content: str) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": content}}}
    )


def event(payload: dict[str, Any]) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(payload)


MESSAGE_END = event({"type": "message-end", "delta": {"finish_reason": "COMPLETE"}})
INPUTS = {
    "a": delta(text="Hel"),
    "t": delta(thinking="Greet."),
    "b": delta(text="lo"),
    "e": MESSAGE_END,
}


def case(operator: Any, outputs: dict[str, str]) -> Case:
    source, expected = docstring_marbles(operator)
    return Case(
        name=operator.__name__,
        operator=lambda _: operator(),
        source=source,
        expected=expected,
        inputs=INPUTS,
        outputs=outputs,
    )


CASES = [
    case(text_only, {"a": "Hel", "b": "lo"}),
    case(thinking_only, {"t": "Greet."}),
    case(accumulate_text, {"a": "Hel", "b": "Hello"}),
]


@pytest.mark.parametrize(("case", "check"), matrix(CASES))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


def collect(events: list[ChatEvent], operator: Any) -> list[str]:
    result: list[str] = reactivex.from_iterable(events).pipe(operator, ops.to_list()).run()
    return result


EVERY_KIND = [
    event({"type": "message-start", "id": "r1", "delta": {"message": {"role": "assistant"}}}),
    event(
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}},
        }
    ),
    delta(thinking="Let me think."),
    delta(thinking=""),
    event({"type": "content-end", "index": 0}),
    event(
        {
            "type": "content-start",
            "index": 1,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        }
    ),
    delta(text=""),
    delta(text="Paris"),
    delta(text=" is the capital."),
    event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look"}}}),
    event({"type": "content-end", "index": 1}),
    event({"type": "some-future-event", "payload": {"text": "not a delta"}}),
    MESSAGE_END,
]


def test_text_only_keeps_only_non_empty_answer_text() -> None:
    assert collect(EVERY_KIND, text_only()) == ["Paris", " is the capital."]


def test_thinking_only_keeps_only_non_empty_reasoning() -> None:
    assert collect(EVERY_KIND, thinking_only()) == ["Let me think."]


def test_accumulate_text_ends_with_the_whole_answer() -> None:
    assert collect(EVERY_KIND, accumulate_text()) == ["Paris", "Paris is the capital."]


def test_pieces_are_passed_on_unchanged_whitespace_included() -> None:
    pieces = ["  Leading", "\n\n", " trailing  ", "\t"]
    assert collect([delta(text=piece) for piece in pieces], text_only()) == pieces


def test_text_only_on_a_recorded_fixture_stream() -> None:
    fixture = Path(__file__).parent.parent / "fixtures" / "thinking_text.sse"
    text = "".join(from_sse_file(fixture).pipe(text_only(), ops.to_list()).run())
    thinking = "".join(from_sse_file(fixture).pipe(thinking_only(), ops.to_list()).run())
    assert text
    assert thinking
    assert text not in thinking
    assert thinking not in text
