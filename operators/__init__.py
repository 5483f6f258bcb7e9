"""Operators for Cohere V2 chat streams: pure functions for ``Observable.pipe``.

Each operator returns a function from one Observable to another, holds its state per
subscription, does no I/O, and keeps the Rx contract: a raising callback becomes
``on_error``; buffered items are emitted before ``on_completed``; on an upstream error
what was buffered rides on the error (read it with :func:`pending`); disposing the
subscription disposes upstream.

Marble legend (used in every operator's docstring)::

    -    one tick of time              |    on_completed
    a    one item (letters name items) #    on_error
    ^    subscription                  (ab) several items in one tick

Every character takes one tick, a group's brackets included (as in RxJS), so diagrams stay
aligned: ``-a-(bc)-d`` has b and c at tick 3 and d at tick 8.
"""

from operators._citations import PairedCitation, pair_citations
from operators._message import accumulate, final_message, snapshots
from operators._pacing import idle_flush, smooth
from operators._pending import attach_pending, pending
from operators._rechunk import buffer_lines, buffer_sentences, buffer_words, rechunk
from operators._structured import partial_json, partial_model
from operators._text import accumulate_text, text_only, thinking_only
from operators._timing import StreamMetrics, Timed, metrics, with_timing
from operators._tool_calls import (
    AssembledToolCall,
    ToolCallProgress,
    assemble_tool_calls,
    tool_call_progress,
    tool_plan,
)

__all__ = [
    "AssembledToolCall",
    "PairedCitation",
    "StreamMetrics",
    "Timed",
    "ToolCallProgress",
    "accumulate",
    "accumulate_text",
    "assemble_tool_calls",
    "attach_pending",
    "buffer_lines",
    "buffer_sentences",
    "buffer_words",
    "final_message",
    "idle_flush",
    "metrics",
    "pair_citations",
    "partial_json",
    "partial_model",
    "pending",
    "rechunk",
    "smooth",
    "snapshots",
    "text_only",
    "thinking_only",
    "tool_call_progress",
    "tool_plan",
    "with_timing",
]
