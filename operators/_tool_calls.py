"""Tool calls: whole calls at ``tool-call-end``, arguments as they assemble, the tool plan.

A call streams as ``tool-call-start`` (id and name), zero or more ``tool-call-delta`` (raw
JSON-text fragments of the arguments, split anywhere, even inside an escape) and
``tool-call-end`` (cohere-v2-stream.md §3). Calls are never interleaved, but the operators
below key their state by ``index`` anyway, so they would not mix up interleaved calls.

The partial-JSON parser is incremental: each character of the arguments is looked at once,
whatever the number of fragments. Building a snapshot after a fragment copies only the
containers still open (closed ones are shared between snapshots) and the string in
progress.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable, abc, compose
from reactivex import operators as ops

from operators._pending import attach_pending
from streamkit import (
    ChatEvent,
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
    "MISSING",
    "AssembledToolCall",
    "PartialJSONParser",
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
    """The arguments so far, parsed as far as they go (see :class:`PartialJSONParser`).

    Shares closed sub-objects with earlier items: treat it as read-only.
    """


# --------------------------------------------------------------------------- partial JSON


class _Missing:
    """The type of :data:`MISSING`."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""The partial value of a document with no usable value yet (``None`` is a JSON value)."""

_WHITESPACE: Final = frozenset(" \t\n\r")
_NUMBER_CHARS: Final = frozenset("0123456789+-.eE")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_STRING_SPECIAL: Final = re.compile(r'["\\]')
_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_LITERALS: Final[dict[str, tuple[str, Any]]] = {
    "t": ("true", True),
    "f": ("false", False),
    "n": ("null", None),
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")

# What an open container expects next.
_KEY_OR_CLOSE: Final = 0  # just after "{"
_KEY: Final = 1  # after "," in an object
_COLON: Final = 2
_VALUE_OR_CLOSE: Final = 3  # just after "["
_VALUE: Final = 4  # after ":" in an object, after "," in an array
_COMMA_OR_CLOSE: Final = 5


class _Frame:
    """An open object or array: its finished entries and what it expects next."""

    __slots__ = ("container", "key", "state")

    def __init__(self, container: dict[str, Any] | list[Any], state: int) -> None:
        self.container = container
        self.state = state
        self.key: str | None = None


class PartialJSONParser:
    """An incremental parser that gives the value of a JSON document's every prefix.

    Feed it fragments with :meth:`feed`; :meth:`snapshot` returns the value so far, with
    open strings, arrays and objects closed. A string in progress is kept (as far as it
    goes: a half-received escape is left out); an incomplete key, number or literal at the
    end is dropped, together with its key, because its value is not known yet (``12`` may
    still become ``123``). :meth:`close` ends the document and returns its value, equal to
    ``json.loads`` of the whole text.

    Cost: each character is examined once (runs of plain string characters in one regex
    step), so feeding is linear in the text however it is split. A snapshot copies the open
    containers along the current path and joins the string in progress; finished values are
    shared between snapshots, so treat snapshots as read-only.

    Example:
        >>> parser = PartialJSONParser()
        >>> parser.feed('{"city": "Par')
        >>> parser.snapshot()
        {'city': 'Par'}
        >>> parser.feed('is", "days": 1')
        >>> parser.snapshot()
        {'city': 'Paris'}
        >>> parser.feed("0}")
        >>> parser.close()
        {'city': 'Paris', 'days': 10}

    Raises:
        ValueError: From :meth:`feed` at the first character no JSON document can have
            there, and from :meth:`close` when the document is incomplete.
    """

    __slots__ = (
        "_done",
        "_error",
        "_escape",
        "_high",
        "_literal",
        "_number",
        "_offset",
        "_pieces",
        "_root",
        "_stack",
        "_string_is_key",
    )

    def __init__(self) -> None:
        self._stack: list[_Frame] = []
        self._root: Any = MISSING
        self._done = False
        # The token in progress: at most one of string, number and literal is active.
        self._pieces: list[str] | None = None
        self._string_is_key = False
        self._escape = ""  # "" | "\\" | "u" followed by the hex digits so far
        self._high: int | None = None  # a \uD800-\uDBFF escape waiting for its low half
        self._number: str | None = None
        self._literal = ""
        self._offset = 0
        self._error: ValueError | None = None

    # ------------------------------------------------------------------ feeding

    def feed(self, text: str) -> None:
        """Parse the next fragment of the document.

        Raises:
            ValueError: If the text cannot continue a JSON document; the parser then keeps
                the state it had before the bad character and refuses further input.
        """
        if self._error is not None:
            raise self._error
        try:
            self._feed(text)
        except ValueError as error:
            self._error = error
            raise

    def _feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self._pieces is not None and not self._escape:
                match = _STRING_SPECIAL.search(text, i)
                stop = n if match is None else match.start()
                if stop > i:
                    self._flush_high()
                    self._pieces.append(text[i:stop])
                    self._offset += stop - i
                    i = stop
                    continue
            self._char(text[i])
            i += 1
            self._offset += 1

    def _fail(self, problem: str) -> ValueError:
        return ValueError(f"{problem} at character {self._offset}")

    def _char(self, c: str) -> None:
        if self._pieces is not None:
            self._string_char(c)
        elif self._number is not None:
            if c in _NUMBER_CHARS:
                self._number += c
                return
            self._finish_number()
            self._structural(c)
        elif self._literal:
            word, value = _LITERALS[self._literal[0]]
            expected = word[len(self._literal)]
            if c != expected:
                raise self._fail(f"expected {expected!r} in {word!r}, got {c!r}")
            self._literal += c
            if len(self._literal) == len(word):
                self._literal = ""
                self._value_done(value)
        else:
            self._structural(c)

    def _string_char(self, c: str) -> None:
        assert self._pieces is not None
        escape = self._escape
        if escape == "":
            if c == '"':
                self._flush_high()
                text = "".join(self._pieces)
                self._pieces = None
                if self._string_is_key:
                    frame = self._stack[-1]
                    frame.key = text
                    frame.state = _COLON
                else:
                    self._value_done(text)
            else:  # a backslash: plain characters take the fast path in _feed
                self._escape = "\\"
        elif escape == "\\":
            if c == "u":
                self._escape = "u"
            elif c in _ESCAPES:
                self._escape = ""
                self._flush_high()
                self._pieces.append(_ESCAPES[c])
            else:
                raise self._fail(f"invalid escape \\{c}")
        else:
            if c not in _HEX:
                raise self._fail(f"invalid \\u escape digit {c!r}")
            escape += c
            if len(escape) < 5:
                self._escape = escape
                return
            self._escape = ""
            code = int(escape[1:], 16)
            # A surrogate pair written as two escapes is one character, as json.loads reads it.
            if self._high is not None and 0xDC00 <= code <= 0xDFFF:
                self._pieces.append(chr(0x10000 + ((self._high - 0xD800) << 10) + code - 0xDC00))
                self._high = None
                return
            self._flush_high()
            if 0xD800 <= code <= 0xDBFF:
                self._high = code
            else:
                self._pieces.append(chr(code))

    def _flush_high(self) -> None:
        if self._high is not None:
            assert self._pieces is not None
            self._pieces.append(chr(self._high))
            self._high = None

    def _finish_number(self) -> None:
        text = self._number
        assert text is not None
        match = _NUMBER.fullmatch(text)
        if match is None:
            raise self._fail(f"invalid number {text!r}")
        self._number = None
        is_float = match.group(1) is not None or match.group(2) is not None
        self._value_done(float(text) if is_float else int(text))

    def _structural(self, c: str) -> None:
        if c in _WHITESPACE:
            return
        if self._done:
            raise self._fail(f"extra data {c!r} after the document")
        frame = self._stack[-1] if self._stack else None
        state = _VALUE if frame is None else frame.state
        if state in (_VALUE, _VALUE_OR_CLOSE, _KEY_OR_CLOSE) and c in "]}":
            if (state == _VALUE_OR_CLOSE and c == "]") or (state == _KEY_OR_CLOSE and c == "}"):
                self._close_container()
                return
            raise self._fail(f"unexpected {c!r}")
        if state in (_VALUE, _VALUE_OR_CLOSE):
            self._start_value(c)
        elif state in (_KEY, _KEY_OR_CLOSE):
            if c != '"':
                raise self._fail(f"expected a key, got {c!r}")
            self._pieces = []
            self._string_is_key = True
        elif state == _COLON:
            if c != ":":
                raise self._fail(f"expected ':', got {c!r}")
            assert frame is not None
            frame.state = _VALUE
        else:  # _COMMA_OR_CLOSE
            assert frame is not None
            is_object = isinstance(frame.container, dict)
            if c == ",":
                frame.state = _KEY if is_object else _VALUE
            elif c == ("}" if is_object else "]"):
                self._close_container()
            else:
                raise self._fail(f"expected ',' or a closing bracket, got {c!r}")

    def _start_value(self, c: str) -> None:
        if c == "{":
            self._stack.append(_Frame({}, _KEY_OR_CLOSE))
        elif c == "[":
            self._stack.append(_Frame([], _VALUE_OR_CLOSE))
        elif c == '"':
            self._pieces = []
            self._string_is_key = False
        elif c == "-" or c.isdigit() and c.isascii():
            self._number = c
        elif c in _LITERALS:
            self._literal = c
        else:
            raise self._fail(f"unexpected {c!r}")

    def _close_container(self) -> None:
        frame = self._stack.pop()
        self._value_done(frame.container)

    def _value_done(self, value: Any) -> None:
        if not self._stack:
            self._root = value
            self._done = True
            return
        frame = self._stack[-1]
        if isinstance(frame.container, dict):
            assert frame.key is not None
            frame.container[frame.key] = value
            frame.key = None
        else:
            frame.container.append(value)
        frame.state = _COMMA_OR_CLOSE

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> Any:
        """Return the value of the text fed so far, or :data:`MISSING` if it has none yet."""
        if self._done:
            return self._root
        tail: Any = MISSING
        if self._pieces is not None and not self._string_is_key:
            if len(self._pieces) > 1:
                self._pieces[:] = ["".join(self._pieces)]  # later snapshots join less
            tail = self._pieces[0] if self._pieces else ""
        for frame in reversed(self._stack):
            container = frame.container
            if isinstance(container, dict):
                copy: dict[str, Any] | list[Any] = dict(container)
                if tail is not MISSING and frame.key is not None and frame.state == _VALUE:
                    copy[frame.key] = tail  # type: ignore[call-overload]
            else:
                copy = list(container)
                if tail is not MISSING:
                    copy.append(tail)
            tail = copy
        return tail

    def close(self) -> Any:
        """End the document and return its value (what ``json.loads`` gives for the text).

        Raises:
            ValueError: If the text fed is not a whole JSON document.
        """
        if self._error is not None:
            raise self._error
        if self._number is not None and not self._stack:
            self._finish_number()  # a top-level number ends with the text
        if not self._done:
            raise self._fail("incomplete JSON document")
        return self._root


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
    :class:`PartialJSONParser`). Nothing is buffered, so nothing rides on an upstream error.
    Pair it with :func:`assemble_tool_calls` for the finished call.

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
