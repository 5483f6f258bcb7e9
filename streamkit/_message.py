"""The whole reply: ``ChatResponse``, the same shape as Cohere's non-streaming V2 response.

``final_message()`` reduces a stream to one of these, and every stream error carries the
one accumulated so far as ``partial_message``. Dumped with ``exclude_none=True`` it is the
JSON the non-streaming ``/v2/chat`` returns for the same reply: parts the reply does not
have (``tool_calls`` on a text turn, ``content`` on a tool turn) are left out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Discriminator, Field, Tag

from streamkit._events import (
    Citation,
    LogprobItem,
    ToolCall,
    UnknownEvent,
    Usage,
    WireModel,
)

__all__ = [
    "AssistantMessage",
    "ChatResponse",
    "ContentItem",
    "TextContent",
    "ThinkingContent",
]


class TextContent(WireModel):
    """A block of answer text."""

    type: Literal["text"] = "text"
    """Always ``"text"``."""
    text: str = ""
    """The text."""


class ThinkingContent(WireModel):
    """A block of the model's reasoning."""

    type: Literal["thinking"] = "thinking"
    """Always ``"thinking"``."""
    thinking: str = ""
    """The reasoning text."""


class OtherContent(WireModel):
    """A content block of a kind streamkit does not know yet, kept whole."""

    type: str
    """The block's kind, as sent."""


def _content_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("text", "thinking") else "other"


ContentItem: TypeAlias = Annotated[
    Annotated[TextContent, Tag("text")]
    | Annotated[ThinkingContent, Tag("thinking")]
    | Annotated[OtherContent, Tag("other")],
    Discriminator(_content_tag),
]
"""One block of ``message.content``: text, thinking, or a kind kept as sent."""


class AssistantMessage(WireModel):
    """The assistant's message: its content blocks, tool plan, tool calls and citations."""

    role: str = "assistant"
    """Always ``"assistant"``."""
    content: list[ContentItem] | None = None
    """Text and thinking blocks, by ``index``; None when the reply has none."""
    tool_plan: str | None = None
    """The plan stated before calling tools; None when there is none."""
    tool_calls: list[ToolCall] | None = None
    """The tool calls, arguments as JSON text; None when there are none."""
    citations: list[Citation] | None = None
    """The citations, in order; None when there are none."""

    @property
    def text(self) -> str:
        """All answer text, joined across text blocks (thinking excluded)."""
        return "".join(c.text for c in self.content or () if isinstance(c, TextContent))

    @property
    def thinking(self) -> str:
        """All reasoning text, joined across thinking blocks."""
        return "".join(c.thinking for c in self.content or () if isinstance(c, ThinkingContent))


class ChatResponse(WireModel):
    """A whole chat reply, shaped like the non-streaming V2 ``/v2/chat`` response."""

    id: str | None = None
    """The response id (from ``message-start``)."""
    finish_reason: str | None = None
    """Why the model stopped; None while the stream has not ended."""
    message: AssistantMessage = AssistantMessage()
    """The assistant's message."""
    usage: Usage | None = None
    """Token usage; None (absent, never zeros) when ``message-end`` never came."""
    logprobs: list[LogprobItem] | None = None
    """Per-chunk log probabilities, when requested with ``logprobs=True``."""
    unknown_events: list[UnknownEvent] = Field(default_factory=list, exclude=True)
    """Events of types streamkit does not know, kept in order (not part of the JSON shape)."""

    @property
    def text(self) -> str:
        """All answer text (thinking excluded): a shortcut for ``message.text``."""
        return self.message.text

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object the non-streaming API returns for this reply."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)
