"""Fold chat events into the whole reply.

Two faces of one fold:

* :class:`MessageAccumulator` is mutable and linear: each ``add`` is O(1) amortised and
  ``snapshot()`` joins the pieces once. The client keeps one per stream so every error can
  carry the partial message; ``final_message()`` uses one per subscription.
* :func:`accumulate` is the pure ``(snapshot, event) -> snapshot`` form, handy on recorded
  events and in ``scan``. Each call copies the snapshot, so it costs O(message size).

The mapping follows Cohere's own (see ``cohere-v2-stream.md`` §4): ``content-start[i]`` plus
the joined ``content-delta[i]`` pieces make ``message.content[i]``; joined
``tool-plan-delta`` make ``tool_plan``; ``tool-call-start[i]`` plus joined argument
fragments make ``tool_calls[i]``; each ``citation-start`` is appended to ``citations``;
``message-end`` gives ``finish_reason`` and ``usage``.

Over a tool run (:func:`~streamkit.run_tools`) the accumulator folds one step at a time:
a :class:`~streamkit.StepEndEvent` closes the step, and the next step's ``message-start``
starts a new message, so the snapshot is always the current step's reply, and at the end
the last step's (the answer). Tool results are not part of the assistant's message and
are skipped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from streamkit._events import (
    ChatEvent,
    Citation,
    CitationEndEvent,
    CitationStartEvent,
    ContentDeltaEvent,
    ContentEndEvent,
    ContentStartEvent,
    DebugEvent,
    ErrorEvent,
    LogprobItem,
    MessageEndEvent,
    MessageStartEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolPlanDeltaEvent,
    UnknownEvent,
    Usage,
)
from streamkit._message import (
    AssistantMessage,
    ChatResponse,
    ContentItem,
    OtherContent,
    TextContent,
    ThinkingContent,
)
from streamkit._run_events import RunEvent, StepEndEvent, ToolResultEvent
from streamkit.errors import UnexpectedEventError

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

__all__ = ["MessageAccumulator", "accumulate"]


_RUN = 64


class _Text:
    """A string built from many small pieces, kept near the size of its text.

    Token pieces are tiny and each ``str`` object costs ~50 bytes, so pieces are joined
    into one string per run of 64: a long reply keeps about one object per 64 pieces, and
    each character is copied once by the joining, so building stays linear.
    """

    __slots__ = ("_runs", "_tail")

    def __init__(self, initial: str = "") -> None:
        self._runs: list[str] = [initial] if initial else []
        self._tail: list[str] = []

    def append(self, piece: str) -> None:
        tail = self._tail
        tail.append(piece)
        if len(tail) == _RUN:
            self._runs.append("".join(tail))
            tail.clear()

    def value(self) -> str:
        """The whole text; joined once, so the next call only joins what came since."""
        if self._tail:
            self._runs.append("".join(self._tail))
            self._tail.clear()
        if len(self._runs) > 1:
            self._runs[:] = ["".join(self._runs)]
        return self._runs[0] if self._runs else ""


@dataclass
class _Block:
    kind: str
    text: _Text = field(default_factory=_Text)
    ended: bool = False


@dataclass
class _Call:
    start: ToolCall
    arguments: _Text = field(default_factory=_Text)
    ended: bool = False


class MessageAccumulator:
    """Accumulates a stream's events into a :class:`ChatResponse`, in linear time.

    Args:
        strict: Raise :class:`~streamkit.errors.UnexpectedEventError` on events that
            contradict the stream so far (a second ``message-start``, a delta for a tool
            call that never started, a ``citation-end`` without its start, content after
            ``message-end``). With ``strict=False`` such events are folded in as well as
            they can be and nothing is raised: the client uses this to keep a best-effort
            partial message whatever the server sends.
    """

    __slots__ = (
        "_blocks",
        "_calls",
        "_citations",
        "_logprobs",
        "_open_citations",
        "_plan",
        "_started",
        "_step_ended",
        "_unknown",
        "ended",
        "finish_reason",
        "id",
        "role",
        "strict",
        "usage",
    )

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self._clear()

    def _clear(self) -> None:
        self.id: str | None = None
        self.role = "assistant"
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.ended = False
        self._started = False
        self._blocks: dict[int, _Block] = {}
        self._plan = _Text()
        self._calls: dict[int, _Call] = {}
        self._citations: list[Citation] = []
        self._open_citations: set[int] = set()
        self._logprobs: list[LogprobItem] = []
        self._unknown: list[UnknownEvent] = []
        self._step_ended = False

    @classmethod
    def from_snapshot(cls, snapshot: ChatResponse, *, strict: bool = True) -> MessageAccumulator:
        """Start from an existing snapshot (its blocks, tool calls and citations count as open)."""
        acc = cls(strict=strict)
        acc.id = snapshot.id
        acc._started = snapshot.id is not None
        acc.role = snapshot.message.role
        acc.finish_reason = snapshot.finish_reason
        acc.usage = snapshot.usage
        acc.ended = snapshot.finish_reason is not None
        for i, item in enumerate(snapshot.message.content or ()):
            if isinstance(item, TextContent):
                acc._blocks[i] = _Block("text", _Text(item.text))
            elif isinstance(item, ThinkingContent):
                acc._blocks[i] = _Block("thinking", _Text(item.thinking))
            else:
                acc._blocks[i] = _Block(item.type)
        acc._plan = _Text(snapshot.message.tool_plan or "")
        for i, call in enumerate(snapshot.message.tool_calls or ()):
            acc._calls[i] = _Call(call, _Text(call.function.arguments))
        acc._citations.extend(snapshot.message.citations or ())
        # A snapshot does not say which citations still wait for their citation-end, so all
        # count as open: otherwise the pure fold rejects every citation-end (citation i is
        # message.citations[i], cohere-v2-stream.md §3).
        acc._open_citations.update(range(len(acc._citations)))
        acc._logprobs.extend(snapshot.logprobs or ())
        acc._unknown.extend(snapshot.unknown_events)
        return acc

    # ------------------------------------------------------------------ folding

    def add(self, event: RunEvent) -> None:
        """Fold one event in (a tool run's events too: see the module's docstring).

        Raises:
            UnexpectedEventError: In strict mode, for an event that contradicts the stream.
        """
        match event:
            case ContentDeltaEvent():
                self._content_delta(event)
            case MessageStartEvent():
                if self._step_ended:
                    self._clear()  # a tool run's next step: a new message
                if self._started and self.strict:
                    self._reject(event, "a second message-start in one stream")
                self._started = True
                if event.id is not None:
                    self.id = event.id
                self.role = event.delta.message.role
            case ContentStartEvent():
                if event.index in self._blocks and self.strict:
                    self._reject(event, f"content block {event.index} started twice")
                self._after_end_check(event)
                self._blocks[event.index] = _Block(event.content_type)
            case ContentEndEvent():
                block = self._blocks.get(event.index)
                if block is None:
                    if self.strict:
                        self._reject(
                            event, f"content-end for block {event.index} that never started"
                        )
                    return
                block.ended = True
            case ToolPlanDeltaEvent():
                self._after_end_check(event)
                self._plan.append(event.tool_plan)
            case ToolCallStartEvent():
                if event.index in self._calls and self.strict:
                    self._reject(event, f"tool call {event.index} started twice")
                self._after_end_check(event)
                start = event.tool_call
                self._calls[event.index] = _Call(start, _Text(start.function.arguments))
            case ToolCallDeltaEvent():
                call = self._calls.get(event.index)
                if call is None or call.ended:
                    if self.strict:
                        state = "that never started" if call is None else "after its end"
                        self._reject(event, f"tool-call-delta for call {event.index} {state}")
                    if call is None:
                        call = self._calls[event.index] = _Call(ToolCall())
                call.arguments.append(event.arguments)
            case ToolCallEndEvent():
                call = self._calls.get(event.index)
                if call is None:
                    if self.strict:
                        self._reject(
                            event, f"tool-call-end for call {event.index} that never started"
                        )
                    return
                call.ended = True
            case CitationStartEvent():
                if event.index in self._open_citations and self.strict:
                    self._reject(event, f"citation {event.index} started twice")
                self._open_citations.add(event.index)
                self._citations.append(event.citation)
            case CitationEndEvent():
                if event.index not in self._open_citations:
                    if self.strict:
                        self._reject(
                            event, f"citation-end for citation {event.index} that never started"
                        )
                    return
                self._open_citations.discard(event.index)
            case MessageEndEvent():
                if self.ended and self.strict:
                    self._reject(event, "a second message-end in one stream")
                self.ended = True
                self.finish_reason = event.delta.finish_reason
                self.usage = event.delta.usage if event.delta.usage is not None else Usage()
            case UnknownEvent():
                self._unknown.append(event)
            case DebugEvent() | ErrorEvent() | ToolResultEvent():
                pass
            case StepEndEvent():
                self._step_ended = True
            case _:
                assert_never(event)

    def _content_delta(self, event: ContentDeltaEvent) -> None:
        content = event.delta.message.content
        kind, piece = (
            ("text", content.text) if content.text is not None else ("thinking", content.thinking)
        )
        block = self._blocks.get(event.index)
        if block is None or block.ended or block.kind != kind:
            if self.strict:
                if block is None:
                    problem = "that never started"
                elif block.ended:
                    problem = "after its content-end"
                else:
                    problem = f"of kind {kind!r} but the block is {block.kind!r}"
                self._reject(event, f"content-delta for block {event.index} {problem}")
            if block is None:
                # The block's kind follows from the key the delta carries (cohere-v2-stream.md §3).
                block = self._blocks[event.index] = _Block(kind)
        self._after_end_check(event)
        if piece:
            block.text.append(piece)
        if event.logprobs is not None:
            self._logprobs.append(event.logprobs)

    def _after_end_check(self, event: ChatEvent) -> None:
        if self.ended and self.strict:
            self._reject(event, f"{event.type} after message-end")

    def _reject(self, event: ChatEvent, problem: str) -> None:
        raise UnexpectedEventError(
            f"unexpected {event.type} event: {problem}",
            event=event,
            partial_message=self.snapshot(),
        )

    # ------------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        """The answer text so far (thinking excluded)."""
        return "".join(b.text.value() for _, b in sorted(self._blocks.items()) if b.kind == "text")

    def snapshot(self) -> ChatResponse:
        """Return the reply so far as an immutable :class:`ChatResponse`."""
        content: list[ContentItem] = []
        for _, block in sorted(self._blocks.items()):
            joined = block.text.value()
            if block.kind == "text":
                content.append(TextContent(text=joined))
            elif block.kind == "thinking":
                content.append(ThinkingContent(thinking=joined))
            else:
                content.append(OtherContent(type=block.kind))
        calls: list[ToolCall] = []
        for _, call in sorted(self._calls.items()):
            arguments = call.arguments.value()
            function = call.start.function.model_copy(update={"arguments": arguments})
            calls.append(call.start.model_copy(update={"function": function}))
        plan = self._plan.value()
        message = AssistantMessage(
            role=self.role,
            content=content or None,
            tool_plan=plan or None,
            tool_calls=calls or None,
            citations=list(self._citations) or None,
        )
        return ChatResponse(
            id=self.id,
            finish_reason=self.finish_reason,
            message=message,
            usage=self.usage,
            logprobs=list(self._logprobs) or None,
            unknown_events=list(self._unknown),
        )


def accumulate(snapshot: ChatResponse | None, event: ChatEvent) -> ChatResponse:
    """Fold one event into a snapshot and return the new snapshot (the old one is unchanged).

    Pure, so it works on recorded events and in ``reactivex.operators.scan``. Pass ``None``
    (or an empty ``ChatResponse()``) for the first event.

    Example:
        >>> from streamkit import CHAT_EVENT_ADAPTER as A
        >>> events = [
        ...     A.validate_python({"type": "message-start", "id": "m1",
        ...                        "delta": {"message": {"role": "assistant"}}}),
        ...     A.validate_python({"type": "content-start", "index": 0, "delta": {
        ...         "message": {"content": {"type": "text", "text": ""}}}}),
        ...     A.validate_python({"type": "content-delta", "index": 0,
        ...                        "delta": {"message": {"content": {"text": "Hi"}}}}),
        ... ]
        >>> snapshot = None
        >>> for event in events:
        ...     snapshot = accumulate(snapshot, event)
        >>> snapshot.text
        'Hi'

    Raises:
        UnexpectedEventError: If the event contradicts the snapshot (see
            :class:`MessageAccumulator`).
    """
    acc = MessageAccumulator() if snapshot is None else MessageAccumulator.from_snapshot(snapshot)
    acc.add(event)
    return acc.snapshot()
