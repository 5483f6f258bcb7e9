"""Show streams and replies to people: a live view in Jupyter, and readable reprs.

* :func:`display_stream` shows a stream as one Jupyter output that updates in place (an
  IPython display handle, no widget library) while the events arrive: the text so far, the
  thinking in a collapsible block, the tool plan, tool calls with their arguments filling
  in, citations highlighted on the spans they cite with their sources listed, and a footer
  with the finish reason, usage and timing. A tool run (:func:`~streamkit.run_tools`)
  shows each step under a ``Step n`` header, with its tool calls and their results. In a
  terminal IPython, where nothing can be
  updated in place, it types the reply out as it arrives and ends with the same sources and
  footer; elsewhere (a script) it prints the reply once it is complete.
* :func:`render_html` and :func:`render_text` turn an event, a :class:`~streamkit.ChatResponse`,
  a tool call or a citation (the wire models and the ``operators`` results) into HTML or
  plain text. Inside IPython they are registered with its display formatters when streamkit
  is imported (or with ``%load_ext streamkit``), so those objects display readably.

IPython is never imported here unless it is already running: ``import streamkit`` works, and
stays light, without it. Every piece of text that comes from the model, the user or a tool
is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeGuard, get_args

from pydantic import BaseModel
from reactivex import Observable

from streamkit._accumulate import MessageAccumulator
from streamkit._adapters import to_async_iterator, to_iterator
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
    MessageEndEvent,
    MessageStartEvent,
    Source,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolPlanDeltaEvent,
    UnknownEvent,
    Usage,
)
from streamkit._message import ChatResponse, TextContent, ThinkingContent
from streamkit._partial_json import MISSING, PartialJSONParser
from streamkit._record import Recording
from streamkit._run_events import RunEvent, StepEndEvent, ToolResultEvent
from streamkit._runner import ToolRun
from streamkit._stats import StreamStats, StreamStatsTracker
from streamkit._stream import ChatStream
from streamkit.errors import StructuredOutputError

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "DisplayHandle",
    "adisplay_stream",
    "describe_event",
    "display_partial",
    "display_stream",
    "load_ipython_extension",
    "render_html",
    "render_text",
]

DEFAULT_INTERVAL = 0.1
"""Seconds between two updates of a live display: ten a second reads smoothly."""

_CURSOR = "▌"
_BOX = (
    "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; line-height: 1.5; "
    "max-width: 52em"
)
_MUTED = "color: #6a737d"
_MARK = "background: #fff3b0; border-radius: 2px; padding: 0 1px"
_PRE = "white-space: pre-wrap; margin: 0.2em 0; font-size: 0.9em"


def _e(value: object) -> str:
    """Escape text for HTML content and attribute values alike."""
    return html.escape(str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    text: str
    numbers: tuple[int, ...]
    """The numbers of the sources the span cites, in the sources list."""


class _Sources:
    """Numbers each distinct source (by type and id) in order of first citation."""

    def __init__(self) -> None:
        self.items: list[Source] = []
        self._numbers: dict[tuple[str, str], int] = {}

    def number(self, source: Source) -> int:
        key = (source.type, source.id or json.dumps(source.model_dump(mode="json")))
        if key not in self._numbers:
            self.items.append(source)
            self._numbers[key] = len(self.items)
        return self._numbers[key]


def _source_title(source: Source) -> str:
    fields: dict[str, Any] = source.document or source.tool_output or {}
    for key in ("title", "name", "url"):
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _source_snippet(source: Source) -> str:
    fields: dict[str, Any] = dict(source.document or source.tool_output or {})
    for key in ("snippet", "text", "content", "body"):
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return value
    rest = {k: v for k, v in fields.items() if k not in ("id", "title")}
    return json.dumps(rest, ensure_ascii=False) if rest else ""


def _source_label(source: Source) -> str:
    return f"{source.type} {source.id}" if source.id else source.type


def _source_html(number: int, source: Source) -> str:
    title = _source_title(source)
    snippet = _source_snippet(source)
    parts = [f"<b>[{number}]</b> <code>{_e(_source_label(source))}</code>"]
    if title:
        parts.append(f" <b>{_e(title)}</b>")
    if snippet and snippet != title:
        parts.append(f' <span style="{_MUTED}">{_e(_clip(snippet, 160))}</span>')
    return "".join(parts)


def _source_text(number: int, source: Source) -> str:
    title = _source_title(source)
    snippet = _source_snippet(source)
    line = f"[{number}] {_source_label(source)}"
    if title:
        line += f" {title}"
    if snippet and snippet != title:
        line += f": {_clip(snippet, 100)}"
    return line


# ----------------------------------------------------------------------------- spans


def _place_citations(
    response: ChatResponse, sources: _Sources
) -> tuple[dict[int, list[_Span]], list[_Span]]:
    """Sort the citations to the blocks they cite: content blocks by index, and the plan.

    The block is the citation's ``content_index`` when the server sends one, else the last
    block of the citation's kind (``THINKING_CONTENT`` cites thinking; anything else text),
    which is where every real stream puts them (cohere-v2-stream.md §3).
    """
    content = response.message.content or []
    last_of: dict[str, int] = {}
    for i, item in enumerate(content):
        last_of[item.type] = i
    by_block: dict[int, list[_Span]] = {}
    plan: list[_Span] = []
    for citation in response.message.citations or ():
        span = _Span(
            citation.start,
            citation.end,
            citation.text,
            tuple(sources.number(s) for s in citation.sources),
        )
        if citation.type == "PLAN":
            plan.append(span)
            continue
        index = citation.content_index
        if index is None:
            kind = "thinking" if citation.type == "THINKING_CONTENT" else "text"
            index = last_of.get(kind)
        if index is not None:
            by_block.setdefault(index, []).append(span)
    return by_block, plan


def _marks(numbers: Iterable[int]) -> str:
    return ",".join(str(n) for n in sorted(set(numbers)))


def _highlight_html(text: str, spans: Sequence[_Span]) -> str:
    """Escape ``text`` and mark each cited span, with its source numbers after it.

    Overlapping spans are handled by cutting the text at every span boundary: each piece is
    marked when any span covers it.
    """
    size = len(text)
    usable = [s for s in spans if 0 <= s.start < s.end and s.start < size]
    if not usable:
        return _e(text)
    cuts = sorted({0, size, *(s.start for s in usable), *(min(s.end, size) for s in usable)})
    out: list[str] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        piece = _e(text[a:b])
        covering = [s for s in usable if s.start <= a and min(s.end, size) >= b]
        if covering:
            title = "cites " + ", ".join(f"[{_marks(s.numbers)}]" for s in covering)
            out.append(f'<mark style="{_MARK}" title="{_e(title)}">{piece}</mark>')
        else:
            out.append(piece)
        ending = [n for s in usable if min(s.end, size) == b for n in s.numbers]
        if ending:
            out.append(f"<sup>[{_marks(ending)}]</sup>")
    return "".join(out)


def _highlight_text(text: str, spans: Sequence[_Span]) -> str:
    """``text`` with ``[n]`` after each cited span (the plain-text form of the marks)."""
    size = len(text)
    ends: dict[int, list[int]] = {}
    for s in spans:
        if 0 <= s.start < s.end and s.start < size:
            ends.setdefault(min(s.end, size), []).extend(s.numbers)
    out: list[str] = []
    position = 0
    for end in sorted(ends):
        out.append(text[position:end] + f"[{_marks(ends[end])}]")
        position = end
    out.append(text[position:])
    return "".join(out)


# ----------------------------------------------------------------------------- pieces


def _arguments_html(arguments: str, complete: bool) -> str:
    if complete:
        try:
            shown = json.dumps(json.loads(arguments or "{}"), indent=2, ensure_ascii=False)
        except ValueError:
            shown = arguments
    else:
        shown = arguments + _CURSOR
    return f'<pre style="{_PRE}">{_e(shown)}</pre>'


def _tool_call_html(
    index: int | None, call_id: str, name: str, arguments: str, *, complete: bool = True
) -> str:
    status = "" if complete else f' <span style="{_MUTED}">receiving arguments…</span>'
    head = "" if index is None else f"<b>{index}.</b> "
    return (
        f"<div>{head}<code>{_e(name)}</code> "
        f'<span style="{_MUTED}">{_e(call_id)}</span>{status}'
        f"{_arguments_html(arguments, complete)}</div>"
    )


def _arguments_text(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), ensure_ascii=False)
    except ValueError:
        return arguments


def _usage_parts(usage: Usage | None) -> list[str]:
    if usage is None:
        return []
    parts: list[str] = []
    tokens, billed = usage.tokens, usage.billed_units
    if tokens is not None and (tokens.input_tokens is not None or tokens.output_tokens):
        parts.append(f"tokens in {tokens.input_tokens} / out {tokens.output_tokens}")
    if billed is not None and (billed.input_tokens is not None or billed.output_tokens):
        parts.append(f"billed in {billed.input_tokens} / out {billed.output_tokens}")
    if usage.cached_tokens:
        parts.append(f"cached {usage.cached_tokens}")
    return parts


def _footer_parts(
    response: ChatResponse,
    stats: StreamStats | None,
    *,
    streaming: bool = False,
    error: str | None = None,
) -> list[str]:
    parts: list[str] = []
    if error is not None:
        parts.append(error)
    elif streaming:
        parts.append("streaming…")
    elif response.finish_reason is not None:
        parts.append(f"finish {response.finish_reason}")
    parts.extend(_usage_parts(response.usage))
    if stats is not None:
        if stats.time_to_first_token is not None:
            parts.append(f"first token {stats.time_to_first_token:.2f} s")
        if stats.tokens_per_second is not None and not streaming:
            parts.append(f"{stats.tokens_per_second:.1f} tokens/s")
        if stats.duration is not None and not streaming:
            parts.append(f"{stats.duration:.2f} s")
    return parts


# ----------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class _Progress:
    """What a live view knows beyond the snapshot: what is still arriving, and timing."""

    streaming: bool = False
    open_calls: frozenset[int] = frozenset()
    stats: StreamStats | None = None
    error: str | None = None


def _message_html(response: ChatResponse, progress: _Progress | None = None) -> str:
    progress = progress or _Progress()
    sources = _Sources()
    by_block, plan_spans = _place_citations(response, sources)
    message = response.message
    content = message.content or []
    last_text = max((i for i, c in enumerate(content) if isinstance(c, TextContent)), default=-1)
    answering = last_text >= 0
    cursor = _CURSOR if progress.streaming else ""
    out = [f'<div class="streamkit-message" style="{_BOX}">']
    # In stream order: thinking, the plan, the tool calls, then the answer.
    for i, item in enumerate(content):
        if isinstance(item, ThinkingContent):
            is_open = " open" if progress.streaming and not answering else ""
            out.append(
                f"<details{is_open}><summary>Thinking ({len(item.thinking)} characters)</summary>"
                f'<div style="{_MUTED}; white-space: pre-wrap">'
                f"{_highlight_html(item.thinking, by_block.get(i, []))}</div></details>"
            )
    if message.tool_plan:
        tail = cursor if not answering and not message.tool_calls else ""
        out.append(
            f'<div><span style="{_MUTED}">Plan:</span> '
            f"<i>{_highlight_html(message.tool_plan, plan_spans)}</i>{tail}</div>"
        )
    if message.tool_calls:
        out.append(f'<div><span style="{_MUTED}">Tool calls</span>')
        for i, call in enumerate(message.tool_calls):
            out.append(
                _tool_call_html(
                    i,
                    call.id,
                    call.function.name,
                    call.function.arguments,
                    complete=i not in progress.open_calls,
                )
            )
        out.append("</div>")
    for i, item in enumerate(content):
        if isinstance(item, TextContent):
            marked = _highlight_html(item.text, by_block.get(i, []))
            tail = cursor if i == last_text else ""
            out.append(f'<div style="white-space: pre-wrap">{marked}{tail}</div>')
        elif not isinstance(item, ThinkingContent):
            out.append(f'<div style="{_MUTED}">[a {_e(item.type)} block]</div>')
    if not content and not message.tool_plan and not message.tool_calls and progress.streaming:
        out.append(f'<div style="{_MUTED}">waiting for the first token…</div>')
    if sources.items:
        out.append(f'<div><span style="{_MUTED}">Sources</span><ol style="margin: 0.2em 0">')
        out.extend(
            f'<li style="list-style: none">{_source_html(n, s)}</li>'
            for n, s in enumerate(sources.items, start=1)
        )
        out.append("</ol></div>")
    footer = _footer_parts(
        response, progress.stats, streaming=progress.streaming, error=progress.error
    )
    if footer:
        out.append(
            f'<div style="{_MUTED}; font-size: 0.85em; border-top: 1px solid #e1e4e8; '
            f'margin-top: 0.4em">{_e(" · ".join(footer))}</div>'
        )
    out.append("</div>")
    return "".join(out)


def _message_text(response: ChatResponse, progress: _Progress | None = None) -> str:
    progress = progress or _Progress()
    sources = _Sources()
    by_block, plan_spans = _place_citations(response, sources)
    message = response.message
    lines: list[str] = []
    content = message.content or []
    lines.extend(
        "Thinking: " + _highlight_text(item.thinking, by_block.get(i, []))
        for i, item in enumerate(content)
        if isinstance(item, ThinkingContent)
    )
    if message.tool_plan:
        lines.append("Plan: " + _highlight_text(message.tool_plan, plan_spans))
    lines.extend(_tool_call_text(i, call) for i, call in enumerate(message.tool_calls or ()))
    lines.extend(
        _highlight_text(item.text, by_block.get(i, []))
        for i, item in enumerate(content)
        if isinstance(item, TextContent)
    )
    lines.extend(_sources_and_footer_text(response, progress, sources))
    return "\n".join(lines)


def _tool_call_text(index: int, call: ToolCall, *, complete: bool = True) -> str:
    arguments = call.function.arguments
    shown = _arguments_text(arguments) if complete else arguments + "…"
    return f"Tool call {index}: {call.function.name}({shown})  [{call.id}]"


def _sources_and_footer_text(
    response: ChatResponse, progress: _Progress, sources: _Sources
) -> list[str]:
    """The lines under the reply's text: its numbered sources, then the footer."""
    lines: list[str] = []
    if sources.items:
        lines.append("Sources:")
        lines.extend("  " + _source_text(n, s) for n, s in enumerate(sources.items, start=1))
    footer = _footer_parts(
        response, progress.stats, streaming=progress.streaming, error=progress.error
    )
    if footer:
        lines.append("— " + " · ".join(footer))
    return lines


# ----------------------------------------------------------------------------- tool runs


def _result_text(result: ToolResultEvent) -> str:
    head = (
        f"{'Error from' if result.is_error else 'Result of'} {result.name} [{result.tool_call_id}]"
    )
    shown = (
        result.error if result.error is not None else json.dumps(result.result, ensure_ascii=False)
    )
    return f"{head}: {_clip(shown or '', 200)}  ({result.duration:.2f} s)"


def _result_html(result: ToolResultEvent) -> str:
    label = "error" if result.is_error else "result"
    shown = (
        result.error if result.error is not None else json.dumps(result.result, ensure_ascii=False)
    )
    return (
        f'<div><code>{_e(result.name)}</code> <span style="{_MUTED}">{_e(result.tool_call_id)} '
        f"{label} in {result.duration:.2f} s</span>"
        f'<pre style="{_PRE}">{_e(_clip(shown or "", 400))}</pre></div>'
    )


def _step_end_text(event: StepEndEvent) -> str:
    reason = f"stopped: {event.stop_reason}" if event.stop_reason else "the run goes on"
    return f"step {event.step} ended · {len(event.tool_results)} tool results · {reason}"


# ----------------------------------------------------------------------------- events


def describe_event(event: ChatEvent) -> str:
    """Say in one line what an event carries (used by reprs and ``streamkit inspect``).

    Example:
        >>> from streamkit import CHAT_EVENT_ADAPTER, describe_event
        >>> describe_event(CHAT_EVENT_ADAPTER.validate_python({"type": "content-delta",
        ...     "index": 0, "delta": {"message": {"content": {"text": " Paris"}}}}))
        "text ' Paris'"
    """
    match event:
        case MessageStartEvent():
            return f"id {event.id}" if event.id else ""
        case ContentStartEvent():
            return f"{event.content_type} block"
        case ContentDeltaEvent():
            if event.thinking is not None:
                return f"thinking {event.thinking!r}"
            return f"text {event.text!r}"
        case ContentEndEvent() | ToolCallEndEvent() | CitationEndEvent():
            return ""
        case ToolPlanDeltaEvent():
            return f"plan {event.tool_plan!r}"
        case ToolCallStartEvent():
            return f"{event.tool_call.function.name} {event.tool_call.id}"
        case ToolCallDeltaEvent():
            return f"arguments {event.arguments!r}"
        case CitationStartEvent():
            citation = event.citation
            cited = ", ".join(_source_label(s) for s in citation.sources)
            return f"{citation.text!r} [{citation.start}:{citation.end}] cites {cited or '-'}"
        case MessageEndEvent():
            parts = [f"finish {event.finish_reason}"]
            parts.extend(_usage_parts(event.delta.usage))
            if event.delta.error:
                parts.append(f"error {event.delta.error!r}")
            return " · ".join(parts)
        case DebugEvent():
            return f"prompt of {len(event.prompt or '')} characters"
        case ErrorEvent():
            return str(event.message or event.error or "")
        case UnknownEvent():
            return "fields " + ", ".join(sorted(k for k in event.data if k != "type"))
        case _:  # mypy points here when the union grows
            assert_never(event)


def _index_of(event: ChatEvent) -> int | None:
    index = getattr(event, "index", None)
    return index if isinstance(index, int) else None


def _event_text(event: ChatEvent) -> str:
    index = _index_of(event)
    head = event.type if index is None else f"{event.type}[{index}]"
    detail = describe_event(event)
    return f"{head} {detail}" if detail else head


def _event_html(event: ChatEvent) -> str:
    index = _index_of(event)
    head = f"<code>{_e(event.type)}</code>"
    if index is not None:
        head += f'<span style="{_MUTED}">[{index}]</span>'
    detail = describe_event(event)
    return f'<span style="{_BOX}">{head} {_e(detail)}</span>' if detail else head


# ----------------------------------------------------------------------------- public renderers


def _citation_parts(obj: Any) -> tuple[int | None, Citation] | None:
    """A wire Citation, or an ``operators`` PairedCitation read as one (duck-typed)."""
    if isinstance(obj, Citation):
        return None, obj
    if type(obj).__name__ == "PairedCitation":
        citation = Citation(
            start=obj.start, end=obj.end, text=obj.text, sources=list(obj.sources), type=obj.type
        )
        return obj.index, citation
    return None


def _tool_call_parts(obj: Any) -> tuple[int | None, str, str, str, bool] | None:
    """(index, id, name, arguments, complete) of any of the tool call models."""
    if isinstance(obj, ToolCall):
        return None, obj.id, obj.function.name, obj.function.arguments, True
    name = type(obj).__name__
    if name in ("AssembledToolCall", "ToolCallProgress"):
        return obj.index, obj.id, obj.name, obj.arguments, name == "AssembledToolCall"
    return None


def render_html(obj: object) -> str | None:
    """Render a reply, an event, a tool call or a citation as an HTML fragment.

    Understands :class:`~streamkit.ChatResponse`, every event, the wire
    :class:`~streamkit.ToolCall` and :class:`~streamkit.Citation`, a
    :class:`~streamkit.Recording`, and the ``operators`` results ``AssembledToolCall``,
    ``ToolCallProgress`` and ``PairedCitation``. All text is HTML-escaped.

    Example:
        >>> from streamkit import ToolCall, ToolCallFunction, render_html
        >>> call = ToolCall(id="c1", function=ToolCallFunction(name="<b>", arguments="{}"))
        >>> "&lt;b&gt;" in render_html(call)
        True

    Returns:
        The HTML, or None for an object it does not know.
    """
    if isinstance(obj, ChatResponse):
        return _message_html(obj)
    if isinstance(obj, Recording):
        return recording_html(obj)
    tool_call = _tool_call_parts(obj)
    if tool_call is not None:
        index, call_id, name, arguments, complete = tool_call
        return _tool_call_html(index, call_id, name, arguments, complete=complete)
    citation = _citation_parts(obj)
    if citation is not None:
        index, cited = citation
        sources = _Sources()
        numbers = tuple(sources.number(s) for s in cited.sources)
        head = "" if index is None else f"<b>{index}.</b> "
        listed = "".join(f"<div>{_source_html(n, s)}</div>" for n, s in enumerate(sources.items, 1))
        return (
            f'<div style="{_BOX}">{head}<mark style="{_MARK}">{_e(cited.text)}</mark>'
            f"<sup>[{_marks(numbers)}]</sup> "
            f'<span style="{_MUTED}">characters {cited.start}–{cited.end}</span>{listed}</div>'
        )
    if isinstance(obj, ToolResultEvent):
        return _result_html(obj)
    if isinstance(obj, StepEndEvent):
        return f'<span style="{_BOX}"><code>step-end</code> {_e(_step_end_text(obj))}</span>'
    if _is_event(obj):
        return _event_html(obj)
    return None


def render_text(obj: object) -> str:
    """Render a reply, an event, a tool call or a citation as readable plain text.

    Understands the same objects as :func:`render_html`; anything else gives its ``repr``.
    Cited spans are followed by the numbers of their sources (``Paris[1]``), listed after
    the text.

    Example:
        >>> from streamkit import ToolCall, ToolCallFunction, render_text
        >>> render_text(ToolCall(id="c1", function=ToolCallFunction(
        ...     name="get_weather", arguments='{"city": "Paris"}')))
        'get_weather({"city": "Paris"})  [c1]'
    """
    if isinstance(obj, ChatResponse):
        return _message_text(obj)
    if isinstance(obj, Recording):
        return recording_table(obj)
    tool_call = _tool_call_parts(obj)
    if tool_call is not None:
        index, call_id, name, arguments, complete = tool_call
        head = "" if index is None else f"{index}. "
        shown = _arguments_text(arguments) if complete else arguments + "…"
        return f"{head}{name}({shown})  [{call_id}]"
    citation = _citation_parts(obj)
    if citation is not None:
        index, cited = citation
        head = "" if index is None else f"{index}. "
        sources = ", ".join(_source_label(s) for s in cited.sources) or "no source"
        return f"{head}{cited.text!r} [{cited.start}:{cited.end}] cites {sources}"
    if isinstance(obj, ToolResultEvent):
        return _result_text(obj)
    if isinstance(obj, StepEndEvent):
        return _step_end_text(obj)
    if _is_event(obj):
        return _event_text(obj)
    return repr(obj)


# Every member of the ChatEvent union (each is ``Annotated[EventClass, Tag(...)]``).
_EVENT_CLASSES: tuple[type, ...] = tuple(
    get_args(member)[0] for member in get_args(get_args(ChatEvent)[0])
)


def _is_event(obj: object) -> TypeGuard[ChatEvent]:
    return isinstance(obj, _EVENT_CLASSES)


# ----------------------------------------------------------------------------- recordings


def recording_table(recording: Recording) -> str:
    """A plain-text table of a recording's events, their times and what they carry.

    Used by ``streamkit inspect``. Columns: position, arrival (seconds), time since the
    previous event (milliseconds), type, detail; then a summary.
    """
    rows = [f"{'#':>4}  {'t (s)':>8}  {'+ms':>7}  {'type':<16} detail"]
    previous = 0.0
    for n, entry in enumerate(recording.entries):
        gap = (entry.time - previous) * 1000
        previous = entry.time
        index = _index_of(entry.event)
        kind = entry.event.type if index is None else f"{entry.event.type}[{index}]"
        detail = _clip(describe_event(entry.event), 70)
        rows.append(f"{n:>4}  {entry.time:>8.3f}  {gap:>7.1f}  {kind:<16} {detail}".rstrip())
    rows.append("")
    rows.extend(_summary_lines(recording))
    return "\n".join(rows)


def _summary_lines(recording: Recording) -> list[str]:
    stats = recording.stats()
    counts = ", ".join(f"{kind} {n}" for kind, n in recording.counts().items())
    lines = [f"{stats.events} events: {counts or 'none'}"]
    timing = [f"duration {recording.end:.3f} s"]
    if stats.time_to_first_token is not None:
        timing.append(f"first token {stats.time_to_first_token:.3f} s")
    if stats.tokens_per_second is not None:
        timing.append(f"{stats.token_count} tokens at {stats.tokens_per_second:.1f} tokens/s")
    lines.append(" · ".join(timing))
    ending = f"finish {stats.finish_reason}" if stats.finish_reason else "no message-end"
    if recording.error is not None:
        ending += f" · ends with {type(recording.error).__name__}: {recording.error}"
    if recording.note:
        ending += f" · recorded: {recording.note}"
    lines.append(ending)
    return lines


def recording_html(recording: Recording) -> str:
    """An HTML summary of a recording: events per type and its timing."""
    rows = "".join(
        f"<tr><td><code>{_e(kind)}</code></td><td style='text-align: right'>{n}</td></tr>"
        for kind, n in recording.counts().items()
    )
    summary = "".join(f"<div>{_e(line)}</div>" for line in _summary_lines(recording)[1:])
    return (
        f'<div style="{_BOX}"><b>Recording</b> of {len(recording.entries)} events'
        f"<table><tr><th>type</th><th>events</th></tr>{rows}</table>{summary}</div>"
    )


# ----------------------------------------------------------------------------- live display


class DisplayHandle(Protocol):
    """What :func:`display_stream` needs of a display: IPython's ``DisplayHandle`` fits."""

    def update(self, obj: Any) -> None:
        """Replace the displayed output with ``obj``."""
        ...


class _View:
    """One frame of a live display: HTML for notebooks, plain text for everything else."""

    def __init__(self, html_text: str, plain: str) -> None:
        self.html = html_text
        self.text = plain

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


class _Live:
    """Folds events into what the live view shows, with their timing."""

    def __init__(self, clock: Callable[[], float], *, run: bool = False) -> None:
        self._clock = clock
        self.run = run
        """Whether the source is a tool run (its first step gets a header too)."""
        self._start = clock()
        self.accumulator = MessageAccumulator(strict=False)
        self.stats = StreamStatsTracker()
        self.open_calls: set[int] = set()
        self.streaming = True
        self.error: str | None = None
        self.end: float | None = None
        self.steps: list[StepEndEvent] = []
        """The ended steps of a tool run (none for a plain stream)."""
        self.results: list[ToolResultEvent] = []
        """The current step's tool results so far."""
        self.step_open = False
        """Whether a step's events came since the last step ended."""

    def add(self, event: RunEvent) -> None:
        if isinstance(event, ToolResultEvent):
            self.results.append(event)
            return
        if isinstance(event, StepEndEvent):
            self.steps.append(event)
            self.results = []
            self.step_open = False
            self.accumulator.add(event)
            return
        self.step_open = True
        self.stats.add(self._clock() - self._start, event)
        self.accumulator.add(event)
        if isinstance(event, ToolCallStartEvent):
            self.open_calls.add(event.index)
        elif isinstance(event, ToolCallEndEvent):
            self.open_calls.discard(event.index)

    def finish(self, error: BaseException | None = None) -> None:
        self.streaming = False
        self.end = self._clock() - self._start
        self.open_calls.clear()
        if isinstance(error, KeyboardInterrupt):
            self.error = "cancelled"
        elif error is not None:
            self.error = f"{type(error).__name__}: {error}"

    def progress(self) -> _Progress:
        return _Progress(
            streaming=self.streaming,
            open_calls=frozenset(self.open_calls),
            stats=self.stats.stats(self.end),
            error=self.error,
        )

    def view(self) -> _View:
        response = self.accumulator.snapshot()
        progress = self.progress()
        if not self.run and not self.steps and not self.results:
            return _View(_message_html(response, progress), _message_text(response, progress))
        # A tool run: every step under its header, its tool results after its message.
        shown: list[tuple[int, ChatResponse, Sequence[ToolResultEvent], _Progress]] = [
            (step.step, step.response, step.tool_results, _Progress()) for step in self.steps
        ]
        if self.step_open or self.results:
            shown.append((len(self.steps) + 1, response, self.results, progress))
        elif shown:
            number, last, results, _ = shown[-1]
            shown[-1] = (number, last, results, progress)
        html_parts: list[str] = []
        text_parts: list[str] = []
        for number, reply, results, step_progress in shown:
            html_parts.append(f"<div><b>Step {number}</b></div>")
            html_parts.append(_message_html(reply, step_progress))
            html_parts.extend(_result_html(result) for result in results)
            text_parts.append(f"── Step {number}")
            text_parts.append(_message_text(reply, step_progress))
            text_parts.extend(_result_text(result) for result in results)
        return _View("".join(html_parts), "\n".join(part for part in text_parts if part))


def _running_shell() -> InteractiveShell | None:
    module = sys.modules.get("IPython")  # never imported here: only looked up if running
    if module is None:
        return None
    shell: InteractiveShell | None = module.get_ipython()
    return shell


def _kernel_shell() -> InteractiveShell | None:
    """The running IPython shell when it is a Jupyter kernel (which can update outputs)."""
    shell = _running_shell()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return shell


def _in_terminal_ipython() -> bool:
    """Whether IPython runs without a Jupyter kernel: ``ipython`` in a terminal, ``embed()``.

    Such a shell prints what it displays (display ids exist only in the Jupyter messaging
    protocol), so an output cannot be updated in place, but a person is watching.
    """
    return _running_shell() is not None and _kernel_shell() is None


class _Output(Protocol):
    """Where a live view goes: told of each event, then closed once the stream ends."""

    def event(self, event: RunEvent) -> None: ...

    def close(self) -> None: ...


class _Updating:
    """A display updated in place (Jupyter): at most once per interval, and at the end."""

    def __init__(self, handle: DisplayHandle, live: _Live, interval: float) -> None:
        self._handle = handle
        self._live = live
        self._interval = interval
        self._last = time.monotonic()

    def event(self, event: RunEvent) -> None:  # noqa: ARG002 - the view reads the fold
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._handle.update(self._live.view())

    def close(self) -> None:
        self._handle.update(self._live.view())


class _PrintedOnce:
    """Plain text printed once the stream ends (outside IPython: a script, a pipe)."""

    def __init__(self, live: _Live, out: TextIO) -> None:
        self._live = live
        self._out = out

    def event(self, event: RunEvent) -> None:
        pass

    def close(self) -> None:
        self._out.write(self._live.view().text + "\n")
        self._out.flush()


class _Typed:
    """The reply typed out as it arrives, for a terminal IPython, then what comes at the end.

    In the order and wording of the plain-text view (``render_text`` of the reply): the
    thinking and the plan labelled, each tool call once its arguments are complete, the
    text. Citations arrive after the text they cite, so instead of marks in it the end lists
    the cited spans with their source numbers, then the sources and the footer.
    """

    def __init__(self, live: _Live, out: TextIO) -> None:
        self._live = live
        self._out = out
        self._part: tuple[str, int] | None = None
        """What the last write belonged to: its kind and block (or tool call) index."""
        self._line_open = False
        self._calls_shown: set[int] = set()

    def _write(self, part: tuple[str, int], text: str, label: str = "") -> None:
        if not text:
            return
        start = ""
        if part != self._part:
            start = ("\n" if self._line_open else "") + label
        # The state changes before the write: a Ctrl-C may land in the middle of it, and
        # close() must still end the line.
        self._part = part
        self._line_open = not text.endswith("\n")
        self._out.write(start + text)
        self._out.flush()

    def event(self, event: RunEvent) -> None:
        if isinstance(event, MessageStartEvent) and (self._live.run or self._live.steps):
            self._calls_shown.clear()  # a tool run's next step numbers its calls from 0
            self._write(
                ("step", len(self._live.steps) + 1), f"── Step {len(self._live.steps) + 1}\n"
            )
        elif isinstance(event, ToolResultEvent):
            self._write(("result", len(self._live.steps)), _result_text(event) + "\n")
        elif isinstance(event, ContentDeltaEvent):
            if event.thinking:
                self._write(("thinking", event.index), event.thinking, "Thinking: ")
            elif event.text:
                self._write(("text", event.index), event.text)
        elif isinstance(event, ToolPlanDeltaEvent):
            self._write(("plan", 0), event.tool_plan, "Plan: ")
        elif isinstance(event, ToolCallEndEvent):
            self._tool_calls(self._live.accumulator.snapshot(), only=event.index)

    def _tool_calls(self, response: ChatResponse, *, only: int | None = None) -> None:
        """Print the calls not printed yet (``only`` that one, once its arguments are in)."""
        for index, call in enumerate(response.message.tool_calls or ()):
            if index in self._calls_shown or only not in (None, index):
                continue
            self._calls_shown.add(index)
            # Unshown calls left at close(): the stream ended before their tool-call-end.
            line = _tool_call_text(index, call, complete=only is not None)
            self._write(("tool call", index), line + "\n")

    def close(self) -> None:
        response = self._live.accumulator.snapshot()
        self._tool_calls(response)
        if self._line_open:
            self._line_open = False
            self._out.write("\n")
        sources = _Sources()
        by_block, plan_spans = _place_citations(response, sources)
        spans = [*plan_spans, *(span for i in sorted(by_block) for span in by_block[i])]
        lines = ["Citations:"] if spans else []
        lines.extend(f'  "{span.text}"[{_marks(span.numbers)}]' for span in spans)
        lines.extend(_sources_and_footer_text(response, self._live.progress(), sources))
        self._out.write("".join(line + "\n" for line in lines))
        self._out.flush()


def _open_output(
    live: _Live, handle: DisplayHandle | None, interval: float, file: TextIO | None
) -> _Output:
    if handle is None and _kernel_shell() is not None:
        from IPython import display as ipython_display  # only reached inside a running kernel

        show: Callable[..., DisplayHandle] = ipython_display.display  # untyped upstream
        handle = show(live.view(), display_id=True)
    if handle is not None:
        return _Updating(handle, live, interval)
    out = file if file is not None else sys.stdout
    return _Typed(live, out) if _in_terminal_ipython() else _PrintedOnce(live, out)


def display_stream(
    source: Observable[RunEvent],
    *,
    interval: float = DEFAULT_INTERVAL,
    handle: DisplayHandle | None = None,
    file: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ChatResponse:
    """Show a stream live in Jupyter, as one output that updates in place; return the reply.

    Subscribes (a client's stream sends its request now), shows the reply as it grows (at
    most one update per ``interval`` seconds, and always the final state) and returns when
    the stream ends. Interrupting the kernel cancels the request and keeps what arrived on
    screen. In a terminal IPython (``ipython``, no Jupyter front end) nothing can be
    updated in place, so the text is printed as it arrives (thinking and the tool plan
    labelled, each tool call once complete), followed by the cited spans, the sources and
    the footer. Elsewhere (a script) the reply is printed, as :func:`render_text` gives it,
    once complete.

    In IPython, displaying a client's stream or a tool run (ending a cell with it) does the
    same.

    Example::

        reply = display_stream(client.chat_stream(model="command-a-03-2025", messages=messages))

    Args:
        source: The stream: any Observable of chat events (a client's stream, a replay...),
            or a tool run from :func:`~streamkit.run_tools` (each step under a header).
        interval: The least number of seconds between two updates of a Jupyter display.
        handle: Where to show it; by default a new IPython display. Anything with an
            ``update(obj)`` method works (the object has ``_repr_html_`` and a text repr).
        file: Where to print outside Jupyter (default ``sys.stdout``).
        clock: The clock that times the events (seconds), for the footer's timing.

    Returns:
        The whole reply (of a tool run: its last step's reply, the answer).

    Raises:
        StreamkitError: What the stream fails with, after the display shows the error.
        KeyboardInterrupt: When interrupted, after the request is cancelled.
    """
    live = _Live(clock, run=isinstance(source, ToolRun))
    output = _open_output(live, handle, interval, file)
    try:
        with to_iterator(source) as events:
            for event in events:
                live.add(event)
                output.event(event)
    except BaseException as error:
        live.finish(error)
        output.close()
        raise
    live.finish()
    output.close()
    return live.accumulator.snapshot()


async def adisplay_stream(
    source: Observable[RunEvent],
    *,
    interval: float = DEFAULT_INTERVAL,
    handle: DisplayHandle | None = None,
    file: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ChatResponse:
    """Show a stream live, like :func:`display_stream`, from a coroutine (``AsyncClient``).

    Example::

        reply = await adisplay_stream(async_client.chat_stream(model=..., messages=...))

    Args:
        source: The stream: any Observable of chat events.
        interval: The least number of seconds between two updates of a Jupyter display.
        handle: Where to show it; by default a new IPython display.
        file: Where to print outside Jupyter (default ``sys.stdout``).
        clock: The clock that times the events (seconds).

    Returns:
        The whole reply.
    """
    live = _Live(clock, run=isinstance(source, ToolRun))
    output = _open_output(live, handle, interval, file)
    try:
        async with to_async_iterator(source) as events:
            async for event in events:
                live.add(event)
                output.event(event)
    except BaseException as error:
        live.finish(error)
        output.close()
        raise
    live.finish()
    output.close()
    return live.accumulator.snapshot()


# ----------------------------------------------------------------------------- partial objects


def _plain_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        # A partial instance has only the fields that arrived (and defaults): dump those.
        return value.model_dump(mode="json", warnings=False)
    return value


class _PartialView:
    """What :func:`display_partial` shows: the latest value, as indented JSON."""

    def __init__(self) -> None:
        self.parser = PartialJSONParser()
        self.value: Any = MISSING
        self.streaming = True
        self.error: str | None = None

    def add(self, item: Any) -> bool:
        """Take an item (a partial value, or a chat event); True when the value changed."""
        if _is_event(item):
            if not isinstance(item, ContentDeltaEvent) or not item.text or self.error:
                return False
            try:
                self.parser.feed(item.text)
            except ValueError as error:
                self.error = f"not JSON: {error}"
                return True
            value = self.parser.snapshot()
        else:
            value = item
        changed = value is not MISSING and value != self.value
        if changed:
            self.value = value
        return changed

    def text(self) -> str:
        shown = "" if self.value is MISSING else self.value
        body = json.dumps(_plain_json(shown), ensure_ascii=False, indent=2, default=str)
        if self.error:
            body += f"\n[{self.error}]"
        return body + (_CURSOR if self.streaming else "")

    def view(self) -> _View:
        return _View(f'<pre style="{_PRE}">{_e(self.text())}</pre>', self.text())


def display_partial(
    source: Observable[Any],
    *,
    interval: float = DEFAULT_INTERVAL,
    handle: DisplayHandle | None = None,
    file: TextIO | None = None,
) -> Any:
    """Show an object filling in while a structured reply streams; return the last value.

    ``source`` is what ``operators.partial_model(Model)`` or ``operators.partial_json()``
    emit (each item replaces the one shown), or a chat stream asked for JSON
    (``response_format=...``), whose answer text is parsed as it arrives. In Jupyter one
    output is updated in place (at most once per ``interval``, and at the end); on a
    terminal the object is redrawn in place; elsewhere (a pipe) it is printed once complete.
    Shown as indented JSON, a model as its ``model_dump``.

    Example::

        order = display_partial(stream.pipe(partial_model(Order)))

    Args:
        source: Partial values (models, dicts, lists...) or chat events.
        interval: The least number of seconds between two updates of a Jupyter display.
        handle: Where to show it; by default a new IPython display in Jupyter.
        file: Where to print outside Jupyter (default ``sys.stdout``).

    Returns:
        The last item of ``source`` (the validated model, for ``partial_model``); for a chat
        stream, the JSON value of its whole text.

    Raises:
        StreamkitError: What the stream fails with, after the display shows it.
        StructuredOutputError: For a chat stream whose text is not one JSON document.
    """
    view = _PartialView()
    if handle is None and _kernel_shell() is not None:
        from IPython import display as ipython_display  # only reached inside a running kernel

        show: Callable[..., DisplayHandle] = ipython_display.display  # untyped upstream
        handle = show(view.view(), display_id=True)
    out = file if file is not None else sys.stdout
    redraw = handle is None and (
        bool(getattr(out, "isatty", lambda: False)()) or _in_terminal_ipython()
    )
    drawn = 0  # the lines drawn last on a terminal, to go back up over
    last_update = time.monotonic()

    def draw(final: bool) -> None:
        nonlocal drawn, last_update
        if handle is not None:
            now = time.monotonic()
            if final or now - last_update >= interval:
                last_update = now
                handle.update(view.view())
        elif redraw or final:
            text = view.text()
            out.write((f"\x1b[{drawn}F\x1b[J" if redraw and drawn else "") + text + "\n")
            out.flush()
            drawn = text.count("\n") + 1

    last: Any = MISSING
    try:
        with to_iterator(source) as items:
            for item in items:
                last = item
                if view.add(item):
                    draw(final=False)
    except BaseException as error:
        view.streaming = False
        view.error = "cancelled" if isinstance(error, KeyboardInterrupt) else repr(error)
        draw(final=True)
        raise
    view.streaming = False
    if _is_event(last) or last is MISSING:
        try:
            last = view.parser.close()
        except ValueError as error:
            text = json.dumps(_plain_json(view.value), ensure_ascii=False)
            view.error = f"not JSON: {error}"
            draw(final=True)
            raise StructuredOutputError(
                f"the reply is not one JSON document ({error})", text=text, errors=[]
            ) from None
        view.value = last
    draw(final=True)
    return last


# ----------------------------------------------------------------------------- IPython


_OPERATOR_MODELS = (
    ("operators._tool_calls", "AssembledToolCall"),
    ("operators._tool_calls", "ToolCallProgress"),
    ("operators._citations", "PairedCitation"),
)


def _html_formatter(obj: object) -> str | None:
    return render_html(obj)


def _text_formatter(obj: object, printer: Any, cycle: bool) -> None:
    printer.text(render_text(obj) if not cycle else "...")


def _display_live(stream: Observable[RunEvent]) -> None:
    display_stream(stream)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register streamkit's reprs and live display with IPython (``%load_ext streamkit``).

    Importing streamkit inside IPython does this already; the extension is for sessions
    that imported streamkit before IPython started.
    """
    display_formatter = ipython.display_formatter
    if display_formatter is None:  # a shell still being set up has none yet
        return
    formatters = display_formatter.formatters
    html_formatter, text_formatter = formatters["text/html"], formatters["text/plain"]
    for cls in (ChatResponse, Recording, ToolCall, Citation, *_EVENT_CLASSES):
        html_formatter.for_type(cls, _html_formatter)
        text_formatter.for_type(cls, _text_formatter)
    for module, name in _OPERATOR_MODELS:
        # By name: streamkit never imports the operators package.
        html_formatter.for_type_by_name(module, name, _html_formatter)
        text_formatter.for_type_by_name(module, name, _text_formatter)
    display_formatter.ipython_display_formatter.for_type(ChatStream, _display_live)
    display_formatter.ipython_display_formatter.for_type(ToolRun, _display_live)


def _register_with_running_ipython() -> None:
    module = sys.modules.get("IPython")
    shell = module.get_ipython() if module is not None else None
    if shell is not None:
        load_ipython_extension(shell)


_register_with_running_ipython()
