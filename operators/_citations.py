"""Citations: pair each ``citation-start`` with its ``citation-end`` and check its span.

A citation's ``start``/``end`` are offsets into the text of its content block
(cohere-v2-stream.md §3). Real streams send citations after the last delta of their block,
but the protocol only promises start/end pairs, so they may come anywhere: between deltas,
after ``content-end``. :func:`pair_citations` therefore keeps the text of every block (and
of the tool plan, for ``PLAN`` citations) and checks each span once its block holds enough
text to judge it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable, abc

from operators._pending import attach_pending
from streamkit import (
    Citation,
    CitationEndEvent,
    CitationStartEvent,
    ContentDeltaEvent,
    ContentEndEvent,
    ContentStartEvent,
    MessageEndEvent,
    RunEvent,
    Source,
    StepEndEvent,
    ToolCallStartEvent,
    ToolPlanDeltaEvent,
)
from streamkit.errors import UnexpectedEventError

__all__ = ["PairedCitation", "pair_citations"]


class PairedCitation(BaseModel):
    """A whole citation, checked against the text it cites.

    Fields the server sends that streamkit does not declare are kept as extra fields.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    index: int
    """The citation's position in ``message.citations`` (it counts citations, not blocks)."""
    start: int
    """Offset of the span's first character in its block's text."""
    end: int
    """Offset just past the span's last character (exclusive)."""
    text: str
    """The cited span, as the server sent it."""
    sources: list[Source] = Field(default_factory=list)
    """The documents or tool results the span cites."""
    type: str | None = None
    """``TEXT_CONTENT``, ``THINKING_CONTENT`` or ``PLAN``; None in 2024 streams."""
    content_index: int | None = None
    """The content block the span belongs to: the server's ``content_index`` when it sends
    one, else the latest block of the citation's kind (text, or thinking for
    ``THINKING_CONTENT``); None for a ``PLAN`` citation or when no such block exists."""
    matches_text: bool
    """Whether the block's text at ``[start:end]`` is exactly :attr:`text`."""
    found_text: str
    """What the block's text holds at ``[start:end]`` (``""`` when there is no block)."""


class _Text:
    """The text of one block (or of the tool plan), kept as pieces and joined on demand."""

    __slots__ = ("ended", "kind", "length", "pieces")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pieces: list[str] = []
        self.length = 0
        self.ended = False

    def add(self, piece: str) -> None:
        self.pieces.append(piece)
        self.length += len(piece)

    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces[:] = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""


_OWN_FIELDS = frozenset(PairedCitation.model_fields)


class _Pairing:
    """The state of one subscription: block texts, open citations, paired ones to check."""

    def __init__(self) -> None:
        self.blocks: dict[int, _Text] = {}
        self.plan = _Text("plan")
        self.open: dict[int, Citation] = {}
        self.paired: deque[tuple[int, Citation]] = deque()
        self.seen: set[int] = set()
        self.finished = False

    def target(self, citation: Citation) -> tuple[int | None, _Text | None]:
        if citation.type == "PLAN":
            return citation.content_index, self.plan
        if citation.content_index is not None:
            return citation.content_index, self.blocks.get(citation.content_index)
        kind = "thinking" if citation.type == "THINKING_CONTENT" else "text"
        for index in reversed(self.blocks):  # the latest block of the citation's kind
            if self.blocks[index].kind == kind:
                return index, self.blocks[index]
        return None, None

    def ready(self, citation: Citation) -> bool:
        if self.finished:
            return True
        _, text = self.target(citation)
        return text is not None and (text.ended or text.length >= citation.end)

    def check(self, index: int, citation: Citation) -> PairedCitation:
        content_index, text = self.target(citation)
        whole = text.text() if text is not None else ""
        in_range = text is not None and 0 <= citation.start <= citation.end <= len(whole)
        found = whole[citation.start : citation.end] if in_range else ""
        extra = {k: v for k, v in (citation.model_extra or {}).items() if k not in _OWN_FIELDS}
        return PairedCitation(
            index=index,
            start=citation.start,
            end=citation.end,
            text=citation.text,
            sources=citation.sources,
            type=citation.type,
            content_index=content_index,
            matches_text=in_range and found == citation.text,
            found_text=found,
            **extra,
        )

    def add(self, event: RunEvent) -> None:
        if isinstance(event, ContentDeltaEvent):
            content = event.delta.message.content
            if content.text is not None:
                kind, piece = "text", content.text
            else:
                kind, piece = "thinking", content.thinking or ""
            block = self.blocks.get(event.index)
            if block is None:  # the kind follows from the key the delta carries (§3)
                block = self.blocks[event.index] = _Text(kind)
            block.add(piece)
        elif isinstance(event, ContentStartEvent):
            self.blocks[event.index] = _Text(event.content_type)
            self.plan.ended = True  # the plan comes before any content (§2)
        elif isinstance(event, ContentEndEvent):
            if event.index in self.blocks:
                self.blocks[event.index].ended = True
        elif isinstance(event, ToolPlanDeltaEvent):
            self.plan.add(event.tool_plan)
        elif isinstance(event, ToolCallStartEvent):
            self.plan.ended = True  # the plan comes before the calls (§2)
        elif isinstance(event, CitationStartEvent):
            if event.index in self.seen:
                raise UnexpectedEventError(
                    f"unexpected citation-start event: citation {event.index} started twice",
                    event=event,
                )
            self.seen.add(event.index)
            self.open[event.index] = event.citation
        elif isinstance(event, CitationEndEvent):
            citation = self.open.pop(event.index, None)
            if citation is None:
                raise UnexpectedEventError(
                    f"unexpected citation-end event: citation {event.index} never started",
                    event=event,
                )
            self.paired.append((event.index, citation))
        elif isinstance(event, MessageEndEvent):
            self.finished = True

    def checked(self) -> list[PairedCitation]:
        """Pop the paired citations that can be judged now, in the order they ended."""
        out: list[PairedCitation] = []
        while self.paired and self.ready(self.paired[0][1]):
            out.append(self.check(*self.paired.popleft()))
        return out

    def held(self) -> list[PairedCitation]:
        """Everything still held (paired first, then unended starts), checked as it stands."""
        items = [self.check(i, c) for i, c in self.paired]
        items.extend(self.check(i, self.open[i]) for i in sorted(self.open))
        self.paired.clear()
        self.open.clear()
        return items


def pair_citations() -> Callable[[Observable[RunEvent]], Observable[PairedCitation]]:
    """Emit each citation at its ``citation-end``, checked against the text it cites.

    Each item carries the citation's span, text, sources and type, its content block, and
    ``matches_text``: whether the block's text at ``[start:end]`` is the cited text. A
    mismatch is flagged, never dropped (``found_text`` shows what the block holds there).
    When the cited text has not arrived yet at ``citation-end`` (a citation sent between
    deltas), the item waits until its block holds ``end`` characters, its block ends, or
    the message ends; later citations wait behind it, so items keep the order of the
    ``citation-end`` events. On completion, waiting citations and citations that never got
    their ``citation-end`` are emitted before ``on_completed``; on an upstream error they
    ride on the error (read them with :func:`pending`). Memory: the text of every block is
    kept to check the spans.

    Marble::

        -a-b-s-e-|      a, b: text deltas; s: citation-start; e: citation-end
        pair_citations()
        -------c-|      c: the citation, checked against the text of a and b

    Example:
        >>> from streamkit import from_events
        >>> from operators import pair_citations
        >>> events = [
        ...     {"type": "content-start", "index": 0,
        ...      "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        ...     {"type": "content-delta", "index": 0,
        ...      "delta": {"message": {"content": {"text": "The tower is 330 m tall."}}}},
        ...     {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {
        ...         "start": 13, "end": 18, "text": "330 m", "type": "TEXT_CONTENT",
        ...         "sources": [{"type": "document", "id": "doc:0", "document": {}}]}}}},
        ...     {"type": "citation-end", "index": 0},
        ... ]
        >>> citation = from_events(events).pipe(pair_citations()).run()
        >>> citation.text, citation.content_index, citation.matches_text
        ('330 m', 0, True)

    Returns:
        An operator from chat events to :class:`PairedCitation` items.

    Raises:
        UnexpectedEventError: (as ``on_error``) For a ``citation-end`` whose
            ``citation-start`` never came, or a citation started twice.
    """

    def operator(source: Observable[RunEvent]) -> Observable[PairedCitation]:
        def subscribe(
            observer: abc.ObserverBase[PairedCitation],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            state = _Pairing()
            stopped = False

            def fail(error: Exception) -> None:
                nonlocal stopped
                stopped = True
                attach_pending(error, tuple(state.held()))
                observer.on_error(error)

            def on_next(event: RunEvent) -> None:
                nonlocal state
                if stopped:
                    return
                try:
                    if isinstance(event, StepEndEvent):
                        # A tool run's next step counts its blocks and citations from 0.
                        state.finished = True
                        ready = state.checked() + state.held()
                        state = _Pairing()
                    else:
                        state.add(event)
                        ready = state.checked()
                except Exception as error:
                    fail(error)
                    return
                for item in ready:
                    observer.on_next(item)

            def on_completed() -> None:
                if stopped:
                    return
                state.finished = True
                try:
                    ready = state.checked() + state.held()
                except Exception as error:
                    fail(error)
                    return
                for item in ready:
                    observer.on_next(item)
                observer.on_completed()

            def on_error(error: Exception) -> None:
                if not stopped:
                    fail(error)

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator
