"""From SSE bytes to typed chat events: the protocol rules, with no I/O.

:class:`ChatEventDecoder` is fed the response body chunk by chunk and yields typed events
in order. It applies the rules of Cohere's stream (``cohere-v2-stream.md`` §1, §3):

* ``data: [DONE]`` ends the stream; anything after it is ignored, never parsed.
* The JSON ``type`` decides the event, not the ``event:`` line (proxies rewrite that).
* An event of unknown type becomes :class:`~streamkit.UnknownEvent` and is yielded.
* Invalid JSON or a wrong shape raises :class:`~streamkit.errors.MalformedEventError`
  with the raw event, after every event before it was yielded.
* ``message-end`` with ``finish_reason: "ERROR"`` is yielded, then raises
  :class:`~streamkit.errors.ServerStreamError`; an ``error`` event raises it directly.
* End of body (or ``[DONE]``) before ``message-end`` raises
  :class:`~streamkit.errors.StreamTruncatedError`.

Every error raised here carries the partial message accumulated so far.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from streamkit._accumulate import MessageAccumulator
from streamkit._events import ChatEvent, ErrorEvent, MessageEndEvent, validate_event_json
from streamkit._message import ChatResponse
from streamkit._sse import EventFields, ServerSentEvent, SSEDecoder
from streamkit.errors import (
    EventTooLargeError,
    LineTooLargeError,
    MalformedEventError,
    ServerStreamError,
    StreamTruncatedError,
)

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "ChatEventDecoder",
    "finish_reason_error",
    "truncation_error",
]

logger = logging.getLogger("streamkit")

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024
"""The largest event (characters of data) accepted by default: 16 MiB."""

_DONE = "[DONE]"


class ChatEventDecoder:
    """Incremental decoder: response body chunks in, typed chat events out.

    Args:
        max_event_size: The largest event accepted, in characters of data.
        max_line_size: The longest line accepted, or None for no limit beyond the event's.
    """

    def __init__(
        self,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        max_line_size: int | None = None,
    ) -> None:
        self._sse = SSEDecoder(max_event_size=max_event_size, max_line_size=max_line_size)
        self.accumulator = MessageAccumulator(strict=False)
        self.done = False
        """True once ``data: [DONE]`` was read: the rest of the body is to be ignored."""
        self.events = 0
        """How many events were yielded."""

    @property
    def finished(self) -> bool:
        """True once the stream reached a normal end (``[DONE]`` or ``message-end``)."""
        return self.done or self.accumulator.ended

    def feed(self, chunk: bytes) -> Iterator[ChatEvent]:
        """Yield the events that ``chunk`` completes, raising typed errors in stream order."""
        if self.done:
            return
        try:
            raw_events = self._sse.feed_fields(chunk)
        except (EventTooLargeError, LineTooLargeError) as error:
            error.partial_message = self.accumulator.snapshot()
            raise
        for raw in raw_events:
            event = self._decode(raw)
            if event is None:
                if self.done:
                    if not self.accumulator.ended:
                        # The server said it is done, but the reply never ended: as
                        # incomplete as an EOF before message-end, so not a success.
                        raise truncation_error(
                            self.events, self.accumulator.snapshot(), " ([DONE] came first)"
                        )
                    return
                continue
            yield event
            if isinstance(event, MessageEndEvent) and event.delta.finish_reason == "ERROR":
                # The message-end is delivered (operators may want it); the error follows.
                self.done = True
                raise self._finish_reason_error(event)
        limit = self._sse.error
        if limit is not None:
            # A limit crossed after the events above in the same chunk: report it now, not on
            # the next read (which may never come if the server stalls).
            limit.partial_message = self.accumulator.snapshot()
            raise limit

    def decode(self, raw: ServerSentEvent) -> ChatEvent | None:
        """Turn one raw SSE event into a typed event and fold it into the partial message.

        Returns None for ``[DONE]`` and for an event with empty data (nothing to decode).
        Raises the errors listed in the module docstring.
        """
        return self._decode((raw.event, raw.data, raw.id, raw.retry))

    def _decode(self, raw: EventFields) -> ChatEvent | None:
        """:meth:`decode` of the decoder's own tuples (no dataclass per event)."""
        data = raw[1]
        if data == _DONE:
            self.done = True
            return None
        if not data:
            return None
        try:
            event = validate_event_json(data)
        except ValidationError as error:
            if raw[0] == "error":
                raise self._error_event_error(ServerSentEvent(*raw)) from None
            raise self._malformed(ServerSentEvent(*raw), error) from None
        self.accumulator.add(event)
        self.events += 1
        if isinstance(event, ErrorEvent):
            reason = event.message or (event.error if isinstance(event.error, str) else "")
            raise ServerStreamError(
                f"the server reported an error mid-stream: {reason or 'no reason given'}",
                error=reason or "",
                error_type=None,
                event=event,
                partial_message=self.accumulator.snapshot(),
            )
        return event

    def _finish_reason_error(self, event: MessageEndEvent) -> ServerStreamError:
        return finish_reason_error(event, self.accumulator.snapshot())

    def finish(self) -> None:
        """Call at the end of the body: raise if the stream ended before ``message-end``."""
        try:
            self._sse.flush()
        except (EventTooLargeError, LineTooLargeError) as error:
            error.partial_message = self.accumulator.snapshot()
            raise
        if self.finished:
            return
        tail = ""
        if self._sse.unterminated:
            tail = f"; its last event ({self._sse.pending_size} characters) was cut off"
        raise truncation_error(self.events, self.accumulator.snapshot(), tail)

    def _malformed(self, raw: ServerSentEvent, error: ValidationError) -> MalformedEventError:
        kind = _json_type(raw.data)
        problem = error.errors(include_url=False, include_input=False)
        first = problem[0]["msg"] if problem else "invalid"
        logger.warning(
            "malformed %s event (%d characters): %s", kind or "untyped", len(raw.data), first
        )
        return MalformedEventError(
            f"malformed {kind or 'untyped'} event ({len(raw.data)} characters): {first}",
            event=raw,
            details=problem,
            partial_message=self.accumulator.snapshot(),
        )

    def _error_event_error(self, raw: ServerSentEvent) -> ServerStreamError:
        try:
            payload: Any = json.loads(raw.data)
        except (ValueError, RecursionError):  # deep nesting overflows json's recursion
            payload = raw.data
        reason = ""
        if isinstance(payload, dict):
            found = payload.get("message") or payload.get("error") or ""
            reason = found if isinstance(found, str) else json.dumps(found)
        elif isinstance(payload, str):
            reason = payload
        return ServerStreamError(
            f"the server reported an error mid-stream: {reason or 'no reason given'}",
            error=reason,
            error_type=None,
            event=ErrorEvent(message=reason or None),
            partial_message=self.accumulator.snapshot(),
        )


def _json_type(data: str) -> str | None:
    """Best-effort event type of a payload, for messages (never the content itself)."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: pydantic refused a deeply nested payload as a validation error,
        # but json.loads overflows on it; the message then just says "untyped".
        return None
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else None


def finish_reason_error(event: MessageEndEvent, partial: ChatResponse) -> ServerStreamError:
    """The error for a ``message-end`` whose ``finish_reason`` is ``"ERROR"``."""
    reason = event.delta.error or ""
    code = event.delta.error_type
    return ServerStreamError(
        "the server ended the stream with an error"
        + (f" ({code})" if code else "")
        + (f": {reason}" if reason else ""),
        error=reason,
        error_type=code,
        event=event,
        partial_message=partial,
    )


def truncation_error(events: int, partial: ChatResponse, tail: str = "") -> StreamTruncatedError:
    """The error for a stream that ended before ``message-end``."""
    return StreamTruncatedError(
        f"the stream ended before message-end after {events} events{tail}",
        partial_message=partial,
    )
