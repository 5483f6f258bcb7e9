"""Static type tests for the tool-call, citation, message and timing operators.

Checked by mypy --strict: after ``pipe`` the element type must be inferred, with no cast.
Run by pytest too, where each ``assert_type`` is a no-op and the pipelines really run.
"""

from __future__ import annotations

import sys

from reactivex import Observable
from reactivex.testing import TestScheduler

from operators import (
    AssembledToolCall,
    PairedCitation,
    StreamMetrics,
    Timed,
    ToolCallProgress,
    assemble_tool_calls,
    final_message,
    metrics,
    pair_citations,
    snapshots,
    tool_call_progress,
    tool_plan,
    with_timing,
)
from streamkit import ChatEvent, ChatResponse, from_events

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


def events() -> Observable[ChatEvent]:
    return from_events([])


def test_tool_call_operators() -> None:
    stream = events()
    assert_type(stream.pipe(assemble_tool_calls()), Observable[AssembledToolCall])
    assert_type(stream.pipe(tool_call_progress()), Observable[ToolCallProgress])
    assert_type(stream.pipe(tool_plan()), Observable[str])


def test_citation_and_message_operators() -> None:
    stream = events()
    assert_type(stream.pipe(pair_citations()), Observable[PairedCitation])
    assert_type(stream.pipe(snapshots()), Observable[ChatResponse])
    assert_type(stream.pipe(final_message()), Observable[ChatResponse])


def test_timing_operators() -> None:
    clock = TestScheduler()
    stream = events()
    assert_type(stream.pipe(with_timing(clock)), Observable[Timed[ChatEvent]])
    assert_type(stream.pipe(metrics(clock)), Observable[StreamMetrics])
