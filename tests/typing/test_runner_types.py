"""Static type tests for the tool runner: a run is an Observable the operators accept.

Checked by mypy --strict; run by pytest too, where each ``assert_type`` is a no-op.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from reactivex import Observable

from operators import (
    accumulate_text,
    assemble_tool_calls,
    final_message,
    metrics,
    pair_citations,
    snapshots,
    text_only,
)
from operators._citations import PairedCitation
from operators._timing import StreamMetrics
from operators._tool_calls import AssembledToolCall
from streamkit import (
    AsyncClient,
    ChatEvent,
    ChatResponse,
    Client,
    RunEvent,
    StepEndEvent,
    StopReason,
    Tool,
    ToolResultEvent,
    ToolRun,
    run_tools,
    tool,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


def lookup(query: str) -> str:
    """Look up."""
    return query


def test_a_run_is_an_observable_of_run_events_for_both_clients() -> None:
    made = tool(lookup)
    assert_type(made, Tool)
    assert_type(tool(name="x")(lookup), Tool)
    with Client.offline() as client:
        run = run_tools(client, model="m", messages=[], tools=[made, tool(name="other")(lookup)])
        assert_type(run, ToolRun)
        observable: Observable[RunEvent] = run
        assert repr(observable).startswith("<ToolRun model='m' tools=['lookup', 'other']")

    def on_a_loop(aclient: AsyncClient) -> None:
        assert_type(run_tools(aclient, model="m", messages=[], tools=[lookup]), ToolRun)

    assert callable(on_a_loop)


def test_operators_accept_runs_and_chat_streams_alike() -> None:
    def pipelines(run: Observable[RunEvent], chat: Observable[ChatEvent]) -> None:
        assert_type(run.pipe(final_message()), Observable[ChatResponse])
        assert_type(chat.pipe(final_message()), Observable[ChatResponse])
        assert_type(run.pipe(text_only()), Observable[str])
        assert_type(run.pipe(accumulate_text()), Observable[str])
        assert_type(run.pipe(snapshots()), Observable[ChatResponse])
        assert_type(run.pipe(assemble_tool_calls()), Observable[AssembledToolCall])
        assert_type(run.pipe(pair_citations()), Observable[PairedCitation])
        assert_type(run.pipe(metrics()), Observable[StreamMetrics])

    assert callable(pipelines)


def test_run_events_are_typed() -> None:
    def read(event: RunEvent) -> str:
        if isinstance(event, StepEndEvent):
            reason: StopReason | None = event.stop_reason
            assert_type(event.messages, list[dict[str, Any]])
            return str(reason)
        if isinstance(event, ToolResultEvent):
            assert_type(event.error, str | None)
            return event.name
        return event.type

    handler: Callable[[RunEvent], str] = read
    assert callable(handler)
