"""Tool calls: whole calls at ``tool-call-end``, arguments as they assemble, the tool plan.

A call streams as ``tool-call-start`` (id and name), zero or more ``tool-call-delta`` (raw
JSON-text fragments of the arguments, split anywhere, even inside an escape) and
``tool-call-end`` (cohere-v2-stream.md §3). Calls are never interleaved, but the operators
below key their state by ``index`` anyway, so they would not mix up interleaved calls.

The arguments are parsed as they arrive by :class:`streamkit.PartialJSONParser`, which looks
at each character once whatever the number of fragments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable, abc, compose
from reactivex import operators as ops

from operators._pending import attach_pending
from streamkit import (
    MISSING,
    ChatEvent,
    PartialJSONParser,
    RunEvent,
    StepEndEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallFunction,
    ToolCallStartEvent,
    ToolPlanDeltaEvent,
)
from streamkit.errors import ToolArgumentsError, UnexpectedEventError

__all__ = [
    "AssembledToolCall",
    "ToolCallProgress",
    "assemble_tool_calls",
    "tool_call_progress",
    "tool_plan",
]


# --------------------------------------------------------------------------- models


class AssembledToolCall(BaseModel):
    """A whole tool call: its id and name, the raw arguments text and the parsed arguments."""

    model_config = ConfigDict(frozen=True)

    index: int
    """The call's position in ``message.tool_calls``."""
    id: str
    """The call's id; answer it with a tool result carrying the same ``tool_call_id``."""
    name: str
    """The tool's name."""
    arguments: str
    """The joined argument fragments, exactly as received (``""`` for a call without any)."""
    parsed: dict[str, Any] = Field(default_factory=dict)
    """The arguments parsed as a JSON object (``{}`` when ``arguments`` is empty)."""

    def to_tool_call(self) -> ToolCall:
        """Return the call in the wire shape of ``message.tool_calls`` (arguments as text)."""
        return ToolCall(
            id=self.id, function=ToolCallFunction(name=self.name, arguments=self.arguments)
        )


class ToolCallProgress(BaseModel):
    """A tool call being streamed: the arguments so far, raw and partially parsed."""

    model_config = ConfigDict(frozen=True)

    index: int
    """The call's position in ``message.tool_calls``."""
    id: str
    """The call's id."""
    name: str
    """The tool's name."""
    fragment: str
    """The fragment that just arrived (``""`` for the ``tool-call-start`` item)."""
    arguments: str
    """All fragments so far, joined."""
    parsed: dict[str, Any] = Field(default_factory=dict)
    """The arguments so far, parsed as far as they go (see :class:`streamkit.PartialJSONParser`).

    Shares closed sub-objects with earlier items: treat it as read-only.
    """


# --------------------------------------------------------------------------- operators


def _parse_arguments(index: int, call: ToolCall, text: str) -> dict[str, Any]:
    """Parse a call's whole arguments; ``""`` (or only whitespace) means no arguments."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise _arguments_error(index, call, text, f"are not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise _arguments_error(index, call, text, f"are JSON {type(value).__name__}, not an object")
    return value


def _reject_constant(name: str) -> Any:
    """Refuse ``NaN`` and ``Infinity``: Python's json reads them, but they are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _arguments_error(index: int, call: ToolCall, text: str, problem: str) -> ToolArgumentsError:
    return ToolArgumentsError(
        f"the arguments of tool call {index} ({call.function.name!r}, id {call.id!r}) {problem}; "
        "the raw text is on the error's .arguments",
        tool_call_id=call.id,
        name=call.function.name,
        arguments=text,
    )


class _OpenCall:
    """A call between its start and end: the start event and the fragments so far."""

    __slots__ = ("call", "parser", "pieces")

    def __init__(self, call: ToolCall) -> None:
        self.call = call
        self.pieces: list[str] = []
        self.parser: PartialJSONParser | None = None

    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces[:] = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""

    def feed(self, fragment: str) -> None:
        """Add a fragment; parse it too once a parser is attached (tool_call_progress)."""
        self.pieces.append(fragment)
        if self.parser is not None:
            self.parser.feed(fragment)

    def progress(self, index: int, fragment: str) -> ToolCallProgress:
        """The call so far as a progress item (parsed as far as the text is valid JSON)."""
        if self.parser is None:
            self.parser = PartialJSONParser()
            try:
                self.parser.feed(self.text())
            except ValueError:
                pass  # the snapshot keeps what parsed before the bad character
        value = self.parser.snapshot()
        return ToolCallProgress(
            index=index,
            id=self.call.id,
            name=self.call.function.name,
            fragment=fragment,
            arguments=self.text(),
            parsed=value if isinstance(value, dict) else {},
        )


def _unexpected(event: ChatEvent, problem: str) -> UnexpectedEventError:
    return UnexpectedEventError(f"unexpected {event.type} event: {problem}", event=event)


def assemble_tool_calls() -> Callable[[Observable[RunEvent]], Observable[AssembledToolCall]]:
    """Emit each tool call, whole and parsed, at its ``tool-call-end``.

    Other events are consumed. A call that sent no ``tool-call-delta`` has ``arguments``
    ``""`` and ``parsed`` ``{}``. Calls still open when the stream completes (a truncated
    recording: the client itself fails such a stream) are assembled before ``on_completed``;
    on an upstream error they ride on the error as :class:`ToolCallProgress` items (read
    them with :func:`pending`).

    Marble::

        -s-d-f-e-|      s: tool-call-start; d, f: argument fragments; e: tool-call-end
        assemble_tool_calls()
        -------c-|      c: the whole call, its fragments joined and parsed

    Example:
        >>> from streamkit import from_events
        >>> from operators import assemble_tool_calls
        >>> events = [
        ...     {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        ...         "id": "t1", "type": "function",
        ...         "function": {"name": "get_weather", "arguments": ""}}}}},
        ...     {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
        ...         "function": {"arguments": '{"city": "Pa'}}}}},
        ...     {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
        ...         "function": {"arguments": 'ris"}'}}}}},
        ...     {"type": "tool-call-end", "index": 0},
        ... ]
        >>> call = from_events(events).pipe(assemble_tool_calls()).run()
        >>> call.name, call.arguments, call.parsed
        ('get_weather', '{"city": "Paris"}', {'city': 'Paris'})

    Returns:
        An operator from chat events to :class:`AssembledToolCall` items.

    Raises:
        ToolArgumentsError: (as ``on_error``) When a call's joined arguments are not a JSON
            object; the raw text is on the error's ``arguments``.
        UnexpectedEventError: (as ``on_error``) For a delta or end of a call that never
            started, or a call started twice.
    """

    def operator(source: Observable[RunEvent]) -> Observable[AssembledToolCall]:
        def subscribe(
            observer: abc.ObserverBase[AssembledToolCall],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            calls: dict[int, _OpenCall] = {}
            started: set[int] = set()  # every index seen, to reject one started twice
            stopped = False

            def held() -> tuple[ToolCallProgress, ...]:
                return tuple(calls[i].progress(i, "") for i in sorted(calls))

            def fail(error: Exception) -> None:
                nonlocal stopped
                stopped = True
                attach_pending(error, held())
                observer.on_error(error)

            def assemble(index: int, call: _OpenCall) -> AssembledToolCall:
                text = call.text()
                parsed = _parse_arguments(index, call.call, text)
                return AssembledToolCall(
                    index=index,
                    id=call.call.id,
                    name=call.call.function.name,
                    arguments=text,
                    parsed=parsed,
                )

            def on_next(event: RunEvent) -> None:
                if stopped:
                    return
                try:
                    if isinstance(event, StepEndEvent):
                        started.clear()  # a tool run's next step counts its calls from 0
                    elif isinstance(event, ToolCallStartEvent):
                        if event.index in started:
                            raise _unexpected(event, f"tool call {event.index} started twice")
                        started.add(event.index)
                        calls[event.index] = _OpenCall(event.tool_call)
                        if event.tool_call.function.arguments:
                            calls[event.index].pieces.append(event.tool_call.function.arguments)
                    elif isinstance(event, ToolCallDeltaEvent):
                        open_call = calls.get(event.index)
                        if open_call is None:
                            raise _unexpected(event, f"call {event.index} never started")
                        open_call.pieces.append(event.arguments)
                    elif isinstance(event, ToolCallEndEvent):
                        open_call = calls.get(event.index)
                        if open_call is None:
                            raise _unexpected(event, f"call {event.index} never started")
                        item = assemble(event.index, open_call)
                        del calls[event.index]
                        observer.on_next(item)
                except Exception as error:
                    fail(error)

            def on_completed() -> None:
                if stopped:
                    return
                try:
                    for index in sorted(calls):
                        item = assemble(index, calls[index])
                        del calls[index]
                        observer.on_next(item)
                except Exception as error:
                    fail(error)
                    return
                observer.on_completed()

            def on_error(error: Exception) -> None:
                if not stopped:
                    fail(error)

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator


def tool_call_progress() -> Callable[[Observable[RunEvent]], Observable[ToolCallProgress]]:
    """Emit each tool call's arguments, partially parsed, as their fragments arrive.

    One item at ``tool-call-start`` (``parsed`` ``{}``: the name is known before any
    argument) and one after each ``tool-call-delta``, with the fragment, the raw text so far
    and the arguments parsed as far as they go: open strings, arrays and objects closed, a
    string in progress kept, an incomplete key, number or literal left out (see
    :class:`streamkit.PartialJSONParser`). Nothing is buffered, so nothing rides on an
    upstream error. Pair it with :func:`assemble_tool_calls` for the finished call.

    Marble::

        -s-d-f-e-|      s: tool-call-start; d, f: argument fragments; e: tool-call-end
        tool_call_progress()
        -p-q-r---|      p: the call with {}; q, r: its arguments parsed so far

    Example:
        >>> from streamkit import from_events
        >>> from operators import tool_call_progress
        >>> def delta(text):
        ...     return {"type": "tool-call-delta", "index": 0,
        ...             "delta": {"message": {"tool_calls": {"function": {"arguments": text}}}}}
        >>> events = [
        ...     {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        ...         "id": "t1", "type": "function",
        ...         "function": {"name": "search", "arguments": ""}}}}},
        ...     delta('{"query": "tall'), delta('est tower", "limit": 1'), delta("0}"),
        ...     {"type": "tool-call-end", "index": 0},
        ... ]
        >>> items = []
        >>> _ = from_events(events).pipe(tool_call_progress()).subscribe(items.append)
        >>> for item in items:
        ...     print(item.parsed)
        {}
        {'query': 'tall'}
        {'query': 'tallest tower'}
        {'query': 'tallest tower', 'limit': 10}

    Returns:
        An operator from chat events to :class:`ToolCallProgress` items.

    Raises:
        ToolArgumentsError: (as ``on_error``) As soon as the fragments cannot be the start
            of a JSON object, or at ``tool-call-end`` when they are not a whole one.
        UnexpectedEventError: (as ``on_error``) For a delta or end of a call that never
            started, or a call started twice.
    """

    def operator(source: Observable[RunEvent]) -> Observable[ToolCallProgress]:
        def subscribe(
            observer: abc.ObserverBase[ToolCallProgress],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            calls: dict[int, _OpenCall] = {}
            started: set[int] = set()  # every index seen, to reject one started twice
            stopped = False

            def emit(index: int, call: _OpenCall, fragment: str) -> None:
                try:
                    call.feed(fragment)
                except ValueError as error:
                    raise _arguments_error(
                        index, call.call, call.text(), f"are not valid JSON ({error})"
                    ) from error
                assert call.parser is not None
                value = call.parser.snapshot()
                if value is not MISSING and not isinstance(value, dict):
                    problem = f"are JSON {type(value).__name__}, not an object"
                    raise _arguments_error(index, call.call, call.text(), problem)
                observer.on_next(call.progress(index, fragment))

            def on_next(event: RunEvent) -> None:
                nonlocal stopped
                if stopped:
                    return
                try:
                    if isinstance(event, StepEndEvent):
                        started.clear()  # a tool run's next step counts its calls from 0
                    elif isinstance(event, ToolCallStartEvent):
                        if event.index in started:
                            raise _unexpected(event, f"tool call {event.index} started twice")
                        started.add(event.index)
                        call = calls[event.index] = _OpenCall(event.tool_call)
                        call.parser = PartialJSONParser()
                        emit(event.index, call, event.tool_call.function.arguments)
                    elif isinstance(event, ToolCallDeltaEvent):
                        call_or_none = calls.get(event.index)
                        if call_or_none is None:
                            raise _unexpected(event, f"call {event.index} never started")
                        emit(event.index, call_or_none, event.arguments)
                    elif isinstance(event, ToolCallEndEvent):
                        ended = calls.pop(event.index, None)
                        if ended is None:
                            raise _unexpected(event, f"call {event.index} never started")
                        assert ended.parser is not None
                        if ended.text().strip():
                            try:
                                ended.parser.close()
                            except ValueError as error:
                                problem = f"are not valid JSON ({error})"
                                raise _arguments_error(
                                    event.index, ended.call, ended.text(), problem
                                ) from error
                except Exception as error:
                    stopped = True
                    observer.on_error(error)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator


def _plan_piece(event: RunEvent) -> str:
    return event.tool_plan if isinstance(event, ToolPlanDeltaEvent) else ""


def tool_plan() -> Callable[[Observable[RunEvent]], Observable[str]]:
    """Emit the tool plan's text pieces, as the model states its plan before calling tools.

    Only ``tool-plan-delta`` events count; empty pieces are skipped. Join the pieces for
    the whole plan (``message.tool_plan`` of the final message).

    Marble::

        -p-q-x-|        p, q: tool-plan-delta events; x: a tool-call-start
        tool_plan()
        -a-b---|        a, b: the text of p and q

    Example:
        >>> from streamkit import from_events
        >>> from operators import tool_plan
        >>> def plan(text):
        ...     return {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": text}}}
        >>> pieces = []
        >>> _ = from_events([plan("I will"), plan(" search.")]).pipe(tool_plan()).subscribe(
        ...     pieces.append)
        >>> pieces
        ['I will', ' search.']

    Returns:
        An operator from chat events to plan text pieces.
    """
    return compose(ops.map(_plan_piece), ops.filter(bool))
