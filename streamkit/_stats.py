"""A stream's statistics, computed in one place: time to first token, tokens per second, counts.

A pure fold. :class:`StreamStatsTracker` is handed each event with its arrival time, in
seconds from the request, and gives :class:`StreamStats` at any moment; it reads no clock
and does no I/O, so the caller says what time it is. That is how a recording (its stored
times), the live display and ``streamkit chat`` (a monotonic clock) and
``operators.metrics`` (a reactivex scheduler's clock, virtual in tests) all give numbers
that mean the same thing: they are computed by the same code.

A token is one generated piece: a ``content-delta`` (text or thinking), a
``tool-plan-delta`` or a ``tool-call-delta``. Cohere streams about one token per delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamkit._events import (
    ChatEvent,
    ContentDeltaEvent,
    MessageEndEvent,
    ToolCallDeltaEvent,
    ToolPlanDeltaEvent,
)

__all__ = ["StreamStats", "StreamStatsTracker", "stream_stats"]


@dataclass(frozen=True)
class StreamStats:
    """How a stream went in time: when the first token came, how fast the rest followed.

    A live display, a recording and ``operators.metrics`` compute these numbers with one
    :class:`StreamStatsTracker`, so they agree: a token is one generated piece (a
    ``content-delta``, ``tool-plan-delta`` or ``tool-call-delta``; Cohere streams about one
    token per delta).
    """

    events: int
    """How many events arrived."""
    time_to_first_token: float | None
    """Seconds from the request to the first token; None when none came."""
    duration: float | None
    """Seconds from the request to the end of the stream; None when it has not ended."""
    token_count: int
    """How many tokens (generated pieces) arrived."""
    tokens_per_second: float | None
    """The decoding speed: tokens after the first, divided by the seconds from the first
    token to the last; None with fewer than two tokens or no time between them."""
    output_tokens: int | None
    """The output tokens ``message-end`` reports (``usage.tokens``, else billed units)."""
    finish_reason: str | None
    """The ``finish_reason`` of ``message-end``; None when it never came."""


class StreamStatsTracker:
    """Folds a stream's events, with their arrival times, into :class:`StreamStats`.

    Call :meth:`add` for each event as it arrives, and :meth:`stats` whenever the numbers
    are wanted (during the stream, or once it ended). Times are seconds from the request,
    read from whatever clock the caller keeps; the tracker reads none.

    Example:
        >>> from streamkit import CHAT_EVENT_ADAPTER, StreamStatsTracker
        >>> delta = CHAT_EVENT_ADAPTER.validate_python({"type": "content-delta", "index": 0,
        ...     "delta": {"message": {"content": {"text": " word"}}}})
        >>> tracker = StreamStatsTracker(keep_gaps=True)
        >>> for seconds in (0.5, 0.75, 1.5):
        ...     tracker.add(seconds, delta)
        >>> stats = tracker.stats(end=2.0)
        >>> stats.time_to_first_token, stats.token_count, stats.tokens_per_second, stats.duration
        (0.5, 3, 2.0, 2.0)
        >>> tracker.gaps()
        [0.25, 0.75]

    Args:
        keep_gaps: Also keep the seconds between consecutive tokens, for :meth:`gaps`.
            Off by default: it costs memory for every token.
    """

    __slots__ = (
        "_events",
        "_finish_reason",
        "_first_token",
        "_gaps",
        "_last",
        "_last_token",
        "_output_tokens",
        "_tokens",
    )

    def __init__(self, *, keep_gaps: bool = False) -> None:
        self._events = 0
        self._tokens = 0
        self._first_token: float | None = None
        self._last_token: float | None = None
        self._last: float | None = None
        self._gaps: list[float] | None = [] if keep_gaps else None
        self._finish_reason: str | None = None
        self._output_tokens: int | None = None

    def add(self, seconds: float, event: ChatEvent) -> None:
        """Count one event that arrived ``seconds`` after the request.

        Args:
            seconds: The event's arrival, in seconds from the request.
            event: The event.
        """
        self._events += 1
        self._last = seconds
        if isinstance(event, ContentDeltaEvent | ToolPlanDeltaEvent | ToolCallDeltaEvent):
            self._tokens += 1
            if self._last_token is None:
                self._first_token = seconds
            elif self._gaps is not None:
                self._gaps.append(seconds - self._last_token)
            self._last_token = seconds
        elif isinstance(event, MessageEndEvent):
            self._finish_reason = event.finish_reason
            usage = event.delta.usage
            if usage is None:
                return
            if usage.tokens is not None and usage.tokens.output_tokens is not None:
                self._output_tokens = usage.tokens.output_tokens
            elif usage.billed_units is not None:
                self._output_tokens = usage.billed_units.output_tokens

    def gaps(self) -> list[float]:
        """The seconds between each token and the one before, in order (one fewer than tokens).

        Returns:
            A new list, empty with fewer than two tokens.

        Raises:
            ValueError: If the tracker was made without ``keep_gaps=True``.
        """
        if self._gaps is None:
            raise ValueError("this tracker keeps no gaps: make it with keep_gaps=True")
        return list(self._gaps)

    def stats(self, end: float | None = None) -> StreamStats:
        """The statistics of the events added so far.

        Args:
            end: When the stream ended, in seconds from the request; by default the last
                event's arrival (None before any event).

        Returns:
            The statistics.
        """
        rate = None
        if self._first_token is not None and self._last_token is not None and self._tokens > 1:
            span = self._last_token - self._first_token
            rate = (self._tokens - 1) / span if span > 0 else None
        return StreamStats(
            events=self._events,
            time_to_first_token=self._first_token,
            duration=self._last if end is None else end,
            token_count=self._tokens,
            tokens_per_second=rate,
            output_tokens=self._output_tokens,
            finish_reason=self._finish_reason,
        )


def stream_stats(
    times: Sequence[float], events: Sequence[ChatEvent], end: float | None = None
) -> StreamStats:
    """Compute a stream's timing statistics from its events and their arrival times.

    Args:
        times: Each event's arrival, in seconds from the request.
        events: The events, in order (as many as ``times``).
        end: When the stream ended; defaults to the last event's arrival.

    Returns:
        The statistics.

    Raises:
        ValueError: If ``times`` and ``events`` differ in length.

    Example:
        >>> from streamkit import CHAT_EVENT_ADAPTER, stream_stats
        >>> events = [CHAT_EVENT_ADAPTER.validate_python(e) for e in [
        ...     {"type": "message-start", "id": "m1"},
        ...     {"type": "content-start", "index": 0,
        ...      "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        ...     {"type": "content-delta", "index": 0,
        ...      "delta": {"message": {"content": {"text": "Hi"}}}},
        ...     {"type": "content-delta", "index": 0,
        ...      "delta": {"message": {"content": {"text": " there"}}}},
        ...     {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}]]
        >>> stats = stream_stats([0.25, 0.25, 0.5, 1.0, 1.5], events)
        >>> stats.time_to_first_token, stats.token_count, stats.tokens_per_second
        (0.5, 2, 2.0)
    """
    tracker = StreamStatsTracker()
    for seconds, event in zip(times, events, strict=True):
        tracker.add(seconds, event)
    return tracker.stats(end)
