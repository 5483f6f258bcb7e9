"""Timing: each item with its time, and a summary of a reply's latency and speed.

All times are read from a reactivex scheduler's clock (``scheduler.now``), so a
``TestScheduler`` gives exact, repeatable numbers and a real scheduler gives wall-clock
time. The clock is the ``scheduler`` argument, else the scheduler given to ``subscribe``,
else reactivex's default (the system clock). Times are in seconds, counted from the
subscription: the moment the request is sent, for a client's stream.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import reactivex
from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable, abc
from reactivex import operators as ops

from operators._pending import attach_pending
from streamkit import RunEvent, StepEndEvent, StreamStatsTracker, ToolResultEvent

__all__ = ["StreamMetrics", "Timed", "metrics", "with_timing"]

_T = TypeVar("_T")


class Timed(BaseModel, Generic[_T]):
    """An item with the scheduler time it arrived at."""

    model_config = ConfigDict(frozen=True)

    value: _T
    """The item itself."""
    timestamp: datetime
    """The scheduler's clock when the item arrived."""
    elapsed: float
    """Seconds from the subscription to the item."""
    interval: float
    """Seconds since the item before (since the subscription, for the first item)."""


class StreamMetrics(BaseModel):
    """How fast a reply came: latency, gaps between tokens, speed, total time.

    A token is one generated piece: a ``content-delta`` (text or thinking), a
    ``tool-plan-delta`` or a ``tool-call-delta`` (Cohere streams about one token per delta).
    The numbers are computed as :class:`streamkit.StreamStats` are, by a
    :class:`streamkit.StreamStatsTracker`, so they agree with a recording's and a display's.
    """

    model_config = ConfigDict(frozen=True)

    total_time: float
    """Seconds from the subscription to completion (or to the error)."""
    time_to_first_token: float | None
    """Seconds from the subscription to the first token; None when no token came."""
    token_count: int
    """How many tokens (generated deltas) came."""
    event_count: int
    """How many events came, tokens included."""
    inter_token_gaps: list[float] = Field(default_factory=list)
    """Seconds between each token and the one before, in order (one fewer than tokens)."""
    gap_p50: float | None
    """The median of :attr:`inter_token_gaps`; None with fewer than two tokens."""
    gap_max: float | None
    """The longest of :attr:`inter_token_gaps`; None with fewer than two tokens."""
    tokens_per_second: float | None
    """The decoding speed: tokens after the first, divided by the seconds from the first
    token to the last (1 / the mean gap). It leaves out the wait for the first token, which
    :attr:`time_to_first_token` measures. None with fewer than two tokens or no time
    between them."""
    output_tokens: int | None
    """The output tokens ``message-end`` reports (``usage.tokens``, else billed units);
    None when it reported none."""


def _seconds(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()


def _metrics(tracker: StreamStatsTracker, total_time: float) -> StreamMetrics:
    stats = tracker.stats(total_time)
    gaps = tracker.gaps()
    return StreamMetrics(
        total_time=total_time,
        time_to_first_token=stats.time_to_first_token,
        token_count=stats.token_count,
        event_count=stats.events,
        inter_token_gaps=gaps,
        gap_p50=statistics.median(gaps) if gaps else None,
        gap_max=max(gaps) if gaps else None,
        tokens_per_second=stats.tokens_per_second,
        output_tokens=stats.output_tokens,
    )


def with_timing(
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[_T]], Observable[Timed[_T]]]:
    """Wrap each item with its scheduler time, elapsed time and interval.

    Works on any Observable, not only chat events. Nothing is buffered: upstream errors
    and completion pass through as they are.

    Marble::

        -a--b-|         a, b: items
        with_timing(scheduler)
        -x--y-|         x, y: a and b, timed

    With the subscription at time 0 and one second a frame, ``x`` has ``elapsed`` 1.0 and
    ``interval`` 1.0, ``y`` has ``elapsed`` 4.0 and ``interval`` 3.0.

    Example:
        >>> import reactivex
        >>> from reactivex.testing import TestScheduler
        >>> from operators import with_timing
        >>> scheduler = TestScheduler()
        >>> source = reactivex.timer(2.0, 3.0, scheduler=scheduler).pipe(
        ...     reactivex.operators.take(2))
        >>> timed = []
        >>> _ = source.pipe(with_timing(scheduler)).subscribe(timed.append)
        >>> scheduler.advance_to(10.0)
        >>> [(t.value, t.elapsed, t.interval) for t in timed]
        [(0, 2.0, 2.0), (1, 5.0, 3.0)]

    Args:
        scheduler: Whose clock to read; defaults to the scheduler given to ``subscribe``,
            else the system clock.

    Returns:
        An operator from items to :class:`Timed` items.
    """

    def operator(source: Observable[_T]) -> Observable[Timed[_T]]:
        def factory(default: abc.SchedulerBase) -> Observable[Timed[_T]]:
            clock = scheduler or default
            start = clock.now
            last = start

            def stamp(value: _T) -> Timed[_T]:
                nonlocal last
                now = clock.now
                item: Timed[_T] = Timed(
                    value=value,
                    timestamp=now,
                    elapsed=_seconds(start, now),
                    interval=_seconds(last, now),
                )
                last = now
                return item

            return source.pipe(ops.map(stamp))

        return reactivex.defer(factory)

    return operator


def metrics(
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[RunEvent]], Observable[StreamMetrics]]:
    """Emit one :class:`StreamMetrics` at completion: latency, token gaps, speed, total time.

    An empty stream gives metrics with no tokens. On an upstream error the metrics so far
    (``total_time`` up to the error) ride on the error (read them with :func:`pending`);
    the error passes unchanged.

    Marble::

        -a-b---c-|      a, b, c: content deltas
        metrics(scheduler)
        ---------(m|)   m: the metrics

    With the subscription at time 0 and one second a frame: ``time_to_first_token`` 1.0,
    ``inter_token_gaps`` [2.0, 4.0], ``tokens_per_second`` 2 / 6, ``total_time`` 9.0.

    Example:
        >>> import reactivex
        >>> from reactivex.testing import TestScheduler
        >>> from streamkit import CHAT_EVENT_ADAPTER
        >>> from operators import metrics
        >>> delta = CHAT_EVENT_ADAPTER.validate_python({"type": "content-delta", "index": 0,
        ...     "delta": {"message": {"content": {"text": " word"}}}})
        >>> scheduler = TestScheduler()
        >>> source = reactivex.timer(0.5, 0.25, scheduler=scheduler).pipe(
        ...     reactivex.operators.take(5), reactivex.operators.map(lambda _: delta))
        >>> report = []
        >>> _ = source.pipe(metrics(scheduler)).subscribe(report.append)
        >>> scheduler.advance_to(10.0)
        >>> m = report[0]
        >>> m.time_to_first_token, m.token_count, m.gap_p50, m.tokens_per_second, m.total_time
        (0.5, 5, 0.25, 4.0, 1.5)

    Args:
        scheduler: Whose clock to read; defaults to the scheduler given to ``subscribe``,
            else the system clock.

    Returns:
        An operator from chat events to one :class:`StreamMetrics`.
    """

    def operator(source: Observable[RunEvent]) -> Observable[StreamMetrics]:
        def factory(default: abc.SchedulerBase) -> Observable[StreamMetrics]:
            clock = scheduler or default
            start = clock.now
            # The numbers are streamkit's own stream statistics, on this scheduler's clock.
            tracker = StreamStatsTracker(keep_gaps=True)

            def summary(_: object = None) -> StreamMetrics:
                return _metrics(tracker, _seconds(start, clock.now))

            def keep_partial(error: Exception, _: Observable[Any]) -> Observable[RunEvent]:
                attach_pending(error, summary())
                return reactivex.throw(error)

            def add(state: StreamStatsTracker, event: RunEvent) -> StreamStatsTracker:
                if not isinstance(event, ToolResultEvent | StepEndEvent):
                    state.add(_seconds(start, clock.now), event)
                return state

            return source.pipe(
                ops.catch(keep_partial),
                ops.reduce(add, tracker),
                ops.map(summary),
            )

        return reactivex.defer(factory)

    return operator
