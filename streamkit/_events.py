"""Typed Cohere V2 chat stream events.

Every event the ``/v2/chat`` stream sends becomes a frozen pydantic model whose fields are
named exactly as on the wire (``delta.message.content.text`` and so on). One discriminated
union, :data:`ChatEvent`, covers them all; :data:`CHAT_EVENT_ADAPTER` validates a payload
(JSON text or a dict) into it.

Two rules keep data from being lost:

* An event whose ``type`` streamkit does not know becomes an :class:`UnknownEvent` holding
  its type and raw JSON object. It flows on like any other event.
* Every model keeps fields it does not declare (Cohere keeps adding some: ``cached_tokens``,
  ``image_tokens``, ``error_type``), and dumps them back out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

__all__ = [
    "CHAT_EVENT_ADAPTER",
    "EVENT_TYPES",
    "BilledUnits",
    "ChatEvent",
    "Citation",
    "CitationEndEvent",
    "CitationStartEvent",
    "ContentDeltaEvent",
    "ContentEndEvent",
    "ContentStartEvent",
    "DebugEvent",
    "ErrorEvent",
    "LogprobItem",
    "MessageEndEvent",
    "MessageStartEvent",
    "Source",
    "ToolCall",
    "ToolCallDeltaEvent",
    "ToolCallEndEvent",
    "ToolCallFunction",
    "ToolCallStartEvent",
    "ToolPlanDeltaEvent",
    "UnknownEvent",
    "Usage",
    "UsageTokens",
]


class WireModel(BaseModel):
    """Base of every wire model: immutable, and keeps the fields it does not declare."""

    model_config = ConfigDict(frozen=True, extra="allow")


# --------------------------------------------------------------------------- shared parts


class ToolCallFunction(WireModel):
    """The function a tool call invokes."""

    name: str = ""
    """The tool's name."""
    arguments: str = ""
    """The arguments as raw JSON text: ``""`` when the tool takes none."""


class ToolCall(WireModel):
    """A tool call, as ``tool-call-start`` announces it and ``message.tool_calls`` lists it."""

    id: str = ""
    """The call's id; a tool result answers it with the same ``tool_call_id``."""
    type: str = "function"
    """Always ``"function"`` today."""
    function: ToolCallFunction = ToolCallFunction()
    """The function's name and arguments."""


class Source(WireModel):
    """Where a citation's text comes from: a document or a tool result.

    Cohere sends ``{"type": "document", "id", "document": {...}}`` or
    ``{"type": "tool", "id", "tool_output": {...}}``; other kinds are kept as extra fields.
    """

    type: str
    """``"document"`` or ``"tool"``."""
    id: str | None = None
    """The document's id, or ``"<tool_call_id>:<n>"`` for a tool result."""
    document: dict[str, Any] | None = None
    """The cited document's fields (for ``type == "document"``)."""
    tool_output: dict[str, Any] | None = None
    """The tool's output (for ``type == "tool"``)."""


class Citation(WireModel):
    """A span of the reply and the sources that support it."""

    start: int
    """Offset of the span's first character in its content block's text."""
    end: int
    """Offset just past the span's last character (exclusive)."""
    text: str
    """The cited span itself."""
    sources: list[Source] = Field(default_factory=list)
    """The documents or tool results the span cites."""
    type: str | None = None
    """``TEXT_CONTENT``, ``THINKING_CONTENT`` or ``PLAN``; absent in 2024 streams."""
    content_index: int | None = None
    """The content block the span belongs to, when the server says."""


class BilledUnits(WireModel):
    """The units a request is billed for."""

    input_tokens: int | None = None
    """Billed prompt tokens (without the prompt template)."""
    output_tokens: int | None = None
    """Billed generated tokens."""
    search_units: int | None = None
    """Billed search units."""
    classifications: int | None = None
    """Billed classification units."""


class UsageTokens(WireModel):
    """The tokens the model actually read and wrote."""

    input_tokens: int | None = None
    """Prompt tokens, including the prompt template."""
    output_tokens: int | None = None
    """Generated tokens."""


class Usage(WireModel):
    """Token usage, from ``message-end``. Absent (None) when the stream never ended."""

    billed_units: BilledUnits | None = None
    """What the request is billed for."""
    tokens: UsageTokens | None = None
    """What the model actually processed."""
    cached_tokens: int | None = None
    """Prompt tokens served from the inference cache."""


class LogprobItem(WireModel):
    """Log probabilities of one text chunk (with ``logprobs=True``)."""

    text: str | None = None
    """The text chunk."""
    token_ids: list[int] = Field(default_factory=list)
    """The ids of the tokens that make up the chunk."""
    logprobs: list[float] | None = None
    """The log probability of each token."""


# --------------------------------------------------------------------------- message-start


class MessageStartMessage(WireModel):
    """The empty message ``message-start`` opens."""

    role: str = "assistant"
    """Always ``"assistant"``."""
    content: list[Any] | None = None
    """Always ``[]`` on the wire."""
    tool_plan: str | None = None
    """Always ``""`` on the wire."""
    tool_calls: list[Any] | None = None
    """Always ``[]`` on the wire."""
    citations: list[Any] | None = None
    """Always ``[]`` on the wire."""


class MessageStartDelta(WireModel):
    """The ``delta`` of ``message-start``."""

    message: MessageStartMessage = MessageStartMessage()
    """The message being opened."""


class MessageStartEvent(WireModel):
    """``message-start``: the first event; carries the response id."""

    type: Literal["message-start"] = "message-start"
    """The event type."""
    id: str | None = None
    """The response id, the same as the non-streaming response's ``id``."""
    delta: MessageStartDelta = MessageStartDelta()
    """The message being opened."""


# --------------------------------------------------------------------------- content


class ContentStartContent(WireModel):
    """The kind of content block that starts: ``text`` or ``thinking``."""

    type: str
    """``"text"`` or ``"thinking"``."""
    text: str | None = None
    """The block's initial text (``""``) for a text block."""
    thinking: str | None = None
    """The block's initial thinking (``""``) for a thinking block."""


class ContentStartMessage(WireModel):
    """The ``delta.message`` of ``content-start``."""

    content: ContentStartContent
    """The block that starts."""


class ContentStartDelta(WireModel):
    """The ``delta`` of ``content-start``."""

    message: ContentStartMessage
    """The message part."""


class ContentStartEvent(WireModel):
    """``content-start``: a content block (text or thinking) opens at ``index``."""

    type: Literal["content-start"] = "content-start"
    """The event type."""
    index: int
    """The block's position in the final ``message.content``."""
    delta: ContentStartDelta
    """The block that starts."""

    @property
    def content_type(self) -> str:
        """The block's kind: ``"text"`` or ``"thinking"``."""
        return self.delta.message.content.type


class ContentDeltaContent(WireModel):
    """One piece of a content block: text or thinking (the wire sends no ``type`` here)."""

    text: str | None = None
    """A piece of answer text."""
    thinking: str | None = None
    """A piece of the model's reasoning."""


class ContentDeltaMessage(WireModel):
    """The ``delta.message`` of ``content-delta``."""

    content: ContentDeltaContent
    """The piece."""


class ContentDeltaDelta(WireModel):
    """The ``delta`` of ``content-delta``."""

    message: ContentDeltaMessage
    """The message part."""


class ContentDeltaEvent(WireModel):
    """``content-delta``: a token piece of the block at ``index``."""

    type: Literal["content-delta"] = "content-delta"
    """The event type."""
    index: int
    """The block the piece belongs to."""
    delta: ContentDeltaDelta
    """The piece."""
    logprobs: LogprobItem | None = None
    """Log probabilities of the piece (only with ``logprobs=True``)."""

    @property
    def text(self) -> str | None:
        """The answer text of this piece, or None for a thinking piece."""
        return self.delta.message.content.text

    @property
    def thinking(self) -> str | None:
        """The reasoning text of this piece, or None for an answer piece."""
        return self.delta.message.content.thinking


class ContentEndEvent(WireModel):
    """``content-end``: the block at ``index`` is complete."""

    type: Literal["content-end"] = "content-end"
    """The event type."""
    index: int
    """The block that ends."""


# --------------------------------------------------------------------------- tool plan and calls


class ToolPlanDeltaMessage(WireModel):
    """The ``delta.message`` of ``tool-plan-delta``."""

    tool_plan: str
    """A piece of the tool plan."""


class ToolPlanDeltaDelta(WireModel):
    """The ``delta`` of ``tool-plan-delta``."""

    message: ToolPlanDeltaMessage
    """The message part."""


class ToolPlanDeltaEvent(WireModel):
    """``tool-plan-delta``: a piece of the plan the model states before calling tools."""

    type: Literal["tool-plan-delta"] = "tool-plan-delta"
    """The event type."""
    delta: ToolPlanDeltaDelta
    """The piece."""

    @property
    def tool_plan(self) -> str:
        """The piece of plan text."""
        return self.delta.message.tool_plan


class ToolCallStartMessage(WireModel):
    """The ``delta.message`` of ``tool-call-start``: one call, not a list."""

    tool_calls: ToolCall
    """The call that starts (its ``arguments`` are ``""``)."""


class ToolCallStartDelta(WireModel):
    """The ``delta`` of ``tool-call-start``."""

    message: ToolCallStartMessage
    """The message part."""


class ToolCallStartEvent(WireModel):
    """``tool-call-start``: tool call number ``index`` begins; its id and name are known."""

    type: Literal["tool-call-start"] = "tool-call-start"
    """The event type."""
    index: int
    """The call's position in the final ``message.tool_calls``."""
    delta: ToolCallStartDelta
    """The call that starts."""

    @property
    def tool_call(self) -> ToolCall:
        """The call that starts."""
        return self.delta.message.tool_calls


class ToolCallDeltaFunction(WireModel):
    """A fragment of a call's arguments."""

    arguments: str = ""
    """A raw JSON-text fragment; join all of a call's fragments to get its arguments."""


class ToolCallDeltaCall(WireModel):
    """The ``tool_calls`` object of ``tool-call-delta``."""

    function: ToolCallDeltaFunction
    """The fragment."""


class ToolCallDeltaMessage(WireModel):
    """The ``delta.message`` of ``tool-call-delta``."""

    tool_calls: ToolCallDeltaCall
    """The fragment."""


class ToolCallDeltaDelta(WireModel):
    """The ``delta`` of ``tool-call-delta``."""

    message: ToolCallDeltaMessage
    """The message part."""


class ToolCallDeltaEvent(WireModel):
    """``tool-call-delta``: a fragment of the arguments of call ``index``."""

    type: Literal["tool-call-delta"] = "tool-call-delta"
    """The event type."""
    index: int
    """The call the fragment belongs to."""
    delta: ToolCallDeltaDelta
    """The fragment."""

    @property
    def arguments(self) -> str:
        """The raw JSON-text fragment."""
        return self.delta.message.tool_calls.function.arguments


class ToolCallEndEvent(WireModel):
    """``tool-call-end``: call ``index`` is complete."""

    type: Literal["tool-call-end"] = "tool-call-end"
    """The event type."""
    index: int
    """The call that ends."""


# --------------------------------------------------------------------------- citations


class CitationStartMessage(WireModel):
    """The ``delta.message`` of ``citation-start``: one citation, not a list."""

    citations: Citation
    """The citation."""


class CitationStartDelta(WireModel):
    """The ``delta`` of ``citation-start``."""

    message: CitationStartMessage
    """The message part."""


class CitationStartEvent(WireModel):
    """``citation-start``: citation number ``index`` (counting citations, not blocks)."""

    type: Literal["citation-start"] = "citation-start"
    """The event type."""
    index: int
    """The citation's position in the final ``message.citations``."""
    delta: CitationStartDelta
    """The citation."""

    @property
    def citation(self) -> Citation:
        """The citation."""
        return self.delta.message.citations


class CitationEndEvent(WireModel):
    """``citation-end``: citation number ``index`` is complete."""

    type: Literal["citation-end"] = "citation-end"
    """The event type."""
    index: int
    """The citation that ends."""


# --------------------------------------------------------------------------- message-end


class MessageEndDelta(WireModel):
    """The ``delta`` of ``message-end``."""

    finish_reason: str | None = None
    """``COMPLETE``, ``STOP_SEQUENCE``, ``MAX_TOKENS``, ``TOOL_CALL``, ``ERROR``, ``TIMEOUT``..."""
    usage: Usage | None = None
    """Token usage (``{}`` on the wire when ``finish_reason`` is ``ERROR``)."""
    error: str | None = None
    """The server's reason, when ``finish_reason`` is ``ERROR``."""
    error_type: str | None = None
    """The server's error code, when ``finish_reason`` is ``ERROR``."""


class MessageEndEvent(WireModel):
    """``message-end``: the last event; carries the finish reason and usage."""

    type: Literal["message-end"] = "message-end"
    """The event type."""
    delta: MessageEndDelta = MessageEndDelta()
    """Finish reason, usage, and the error if there was one."""

    @property
    def finish_reason(self) -> str | None:
        """Why the model stopped."""
        return self.delta.finish_reason


# --------------------------------------------------------------------------- rare and unknown


class DebugEvent(WireModel):
    """``debug``: in Cohere's event union but not seen in real streams."""

    type: Literal["debug"] = "debug"
    """The event type."""
    prompt: str | None = None
    """The rendered prompt, when the server sends it."""


class ErrorEvent(WireModel):
    """``error``: an error some gateways send inside a 200 stream.

    The client never emits it: it ends the stream with
    :class:`~streamkit.errors.ServerStreamError` instead. It appears only when reading
    recorded streams as events.
    """

    type: Literal["error"] = "error"
    """The event type."""
    message: str | None = None
    """The human-readable reason, when given as ``message``."""
    error: Any = None
    """The reason or an error object, when given as ``error``."""


class UnknownEvent(WireModel):
    """An event whose ``type`` streamkit does not know yet: kept whole and passed on."""

    type: str
    """The event type, as sent."""
    data: dict[str, Any]
    """The whole JSON object, as sent."""

    @model_validator(mode="before")
    @classmethod
    def _wrap_raw(cls, value: Any) -> Any:
        # A raw wire object becomes {"type", "data": <the whole object>}. An already wrapped
        # one (from the constructor) holds its own type inside data.
        if isinstance(value, dict):
            data = value.get("data")
            wrapped = (
                isinstance(data, dict)
                and set(value) == {"type", "data"}
                and data.get("type") == value.get("type")
            )
            if not wrapped:
                return {"type": value.get("type"), "data": value}
        return value


_KNOWN_TYPES = frozenset(
    {
        "message-start",
        "content-start",
        "content-delta",
        "content-end",
        "tool-plan-delta",
        "tool-call-start",
        "tool-call-delta",
        "tool-call-end",
        "citation-start",
        "citation-end",
        "message-end",
        "debug",
        "error",
    }
)
EVENT_TYPES: frozenset[str] = _KNOWN_TYPES
"""The ``type`` values streamkit has a model for; any other becomes :class:`UnknownEvent`."""


def _event_tag(value: Any) -> str | None:
    """Pick the union member: the JSON ``type`` when known, ``"unknown"`` otherwise.

    A payload that is not an object, or has no string ``type``, gets no tag, so validation
    fails with a clear error instead of inventing an event.
    """
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None
    if isinstance(value, UnknownEvent):
        return "unknown"
    return kind if kind in _KNOWN_TYPES else "unknown"


ChatEvent: TypeAlias = Annotated[
    Annotated[MessageStartEvent, Tag("message-start")]
    | Annotated[ContentStartEvent, Tag("content-start")]
    | Annotated[ContentDeltaEvent, Tag("content-delta")]
    | Annotated[ContentEndEvent, Tag("content-end")]
    | Annotated[ToolPlanDeltaEvent, Tag("tool-plan-delta")]
    | Annotated[ToolCallStartEvent, Tag("tool-call-start")]
    | Annotated[ToolCallDeltaEvent, Tag("tool-call-delta")]
    | Annotated[ToolCallEndEvent, Tag("tool-call-end")]
    | Annotated[CitationStartEvent, Tag("citation-start")]
    | Annotated[CitationEndEvent, Tag("citation-end")]
    | Annotated[MessageEndEvent, Tag("message-end")]
    | Annotated[DebugEvent, Tag("debug")]
    | Annotated[ErrorEvent, Tag("error")]
    | Annotated[UnknownEvent, Tag("unknown")],
    Discriminator(
        _event_tag,
        custom_error_type="invalid_event",
        custom_error_message="an event must be a JSON object with a string 'type'",
    ),
]
"""Any Cohere V2 chat stream event: one of the event models, chosen by the JSON ``type``."""

CHAT_EVENT_ADAPTER: TypeAdapter[ChatEvent] = TypeAdapter(ChatEvent)
"""Validates JSON text (``validate_json``) or a dict (``validate_python``) into a ChatEvent."""

# The same members without UnknownEvent, chosen by a plain string discriminator: pydantic-core
# then reads `type` straight from the JSON instead of calling `_event_tag` back in Python,
# which makes a typical payload about a quarter cheaper (benchmarks/RESULTS.md, "Profile").
_KNOWN_EVENT_ADAPTER: TypeAdapter[ChatEvent] = TypeAdapter(
    Annotated[
        MessageStartEvent
        | ContentStartEvent
        | ContentDeltaEvent
        | ContentEndEvent
        | ToolPlanDeltaEvent
        | ToolCallStartEvent
        | ToolCallDeltaEvent
        | ToolCallEndEvent
        | CitationStartEvent
        | CitationEndEvent
        | MessageEndEvent
        | DebugEvent
        | ErrorEvent,
        Field(discriminator="type"),
    ]
)


def validate_event_json(data: str | bytes) -> ChatEvent:
    """``CHAT_EVENT_ADAPTER.validate_json(data)``, faster for the event types streamkit knows.

    Whatever the fast path refuses (an unknown or missing ``type``, a malformed event) is
    validated again by :data:`CHAT_EVENT_ADAPTER`, so the result, and the error raised, are
    always exactly that adapter's.

    Raises:
        pydantic.ValidationError: If ``data`` is not a valid event (the adapter's error).
    """
    try:
        return _KNOWN_EVENT_ADAPTER.validate_json(data)
    except ValidationError:
        return CHAT_EVENT_ADAPTER.validate_json(data)


def event_to_dict(event: ChatEvent) -> dict[str, Any]:
    """Return the event as the JSON object the server sent (unset fields left out)."""
    if isinstance(event, UnknownEvent):
        return dict(event.data)
    return event.model_dump(mode="json", exclude_unset=True, by_alias=True)
