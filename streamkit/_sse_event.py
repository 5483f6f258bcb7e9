"""What the SSE decoder hands out: one dispatched server-sent event, as plain data.

It lives apart from the decoder (:mod:`streamkit._sse`) so that :mod:`streamkit.errors` can
name it (``MalformedEventError.event``) while the decoder raises those errors: data below,
errors above it, decoding above both, and no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched server-sent event."""

    event: str = "message"
    """The event type: the ``event`` field, or ``"message"`` when it was absent or empty."""
    data: str = ""
    """The ``data`` field values joined by LF (``"\\n"``)."""
    id: str = ""
    """The last event ID in force when the event was dispatched (it is sticky, per spec)."""
    retry: int | None = None
    """The reconnection time in force when the event was dispatched, in milliseconds.

    None while the server has never sent a valid ``retry`` field. Clamped to
    :data:`~streamkit._sse.MAX_RETRY_MS`.
    """
