"""The events a tool run adds to its steps' chat events.

:func:`~streamkit.run_tools` emits, for each step, that step's chat events (the same
:data:`~streamkit.ChatEvent` objects a single ``chat_stream`` gives), then a
:class:`ToolResultEvent` per tool call as each call finishes, then one
:class:`StepEndEvent`. The last :class:`StepEndEvent` says why the run stopped and holds
the whole conversation.

Why a separate union, :data:`RunEvent`, rather than two more members of ``ChatEvent``:
``ChatEvent`` is what Cohere sends, one model per wire ``type``, validated from JSON by
:data:`~streamkit.CHAT_EVENT_ADAPTER`; these two are made by streamkit and must never be
read off the wire (a server sending ``"type": "step-end"`` still gets an
:class:`~streamkit.UnknownEvent`). ``RunEvent`` is the wider type, and
``Observable[ChatEvent]`` is an ``Observable[RunEvent]`` (Observables are covariant), so
operators that accept ``Observable[RunEvent]`` work on single streams and tool runs
alike.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from streamkit._events import ChatEvent
from streamkit._message import ChatResponse

__all__ = ["RunEvent", "StepEndEvent", "StopReason", "ToolResultEvent"]

StopReason: TypeAlias = Literal["answered", "max_steps"]
"""Why a tool run stopped: ``"answered"``, the model replied without calling a tool;
``"max_steps"``, the step limit was reached (the last step's tools ran, and the
conversation ends with their results, ready to continue)."""


class ToolResultEvent(BaseModel):
    """One tool call's outcome: its result, or the error the model is told instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["tool-result"] = "tool-result"
    """The event type (streamkit's own, never on the wire)."""
    step: int
    """The step (from 1) whose reply made the call."""
    tool_call_id: str
    """The call's id, as the model sent it."""
    name: str
    """The tool's name, as the model sent it (it may name no tool)."""
    arguments: str
    """The call's arguments as the model sent them: raw JSON text."""
    result: Any = None
    """What the tool returned, as JSON data; None when ``error`` is set."""
    error: str | None = None
    """Why there is no result (the tool raised, the arguments did not validate, the tool is
    unknown or timed out); this text is what the model reads."""
    duration: float = 0.0
    """Seconds from the call's start to its result."""

    @property
    def is_error(self) -> bool:
        """Whether the call failed (``error`` is set)."""
        return self.error is not None


class StepEndEvent(BaseModel):
    """The end of one step of a tool run: its reply, its tool results, the conversation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["step-end"] = "step-end"
    """The event type (streamkit's own, never on the wire)."""
    step: int
    """The step that ended, from 1."""
    response: ChatResponse
    """The model's reply in this step."""
    tool_results: tuple[ToolResultEvent, ...] = ()
    """The results of this step's tool calls, in the order of the calls."""
    messages: list[dict[str, Any]] = Field(default_factory=list)
    """The conversation so far in Cohere V2 shape: the messages the run started with, then
    each step's assistant message and its ``tool`` messages. Pass it as ``messages`` to
    continue the conversation."""
    stop_reason: StopReason | None = None
    """Why the run stopped, on its last event; None when another step follows."""

    @property
    def is_final(self) -> bool:
        """Whether this is the run's last event."""
        return self.stop_reason is not None


RunEvent: TypeAlias = ChatEvent | ToolResultEvent | StepEndEvent
"""Any event of a tool run: a chat event of one of its steps, a tool result or a step end.

Every :data:`~streamkit.ChatEvent` is a ``RunEvent``, so a single chat stream is a tool run
of one step without tools as far as the types go."""
