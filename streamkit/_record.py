r"""Record a chat stream with its timing, and replay it at any speed.

A recording is a valid SSE response body: the events as Cohere sent them, each preceded by an
SSE comment giving the seconds from the subscription (the request) to its arrival::

    : streamkit recording 1
    : t=0.412
    event: message-start
    data: {"id":"7d0c...","type":"message-start",...}

    : t=0.431
    event: content-delta
    data: {"type":"content-delta","index":0,...}

    : t=1.873
    data: [DONE]

Any SSE parser skips comment lines (WHATWG HTML §9.2.6: a line that starts with a colon), so
:func:`~streamkit.from_sse_file` reads a recording like any recorded body, and
:func:`read_recording` / :func:`replay` read a plain body with no timing as one where every
event arrived at once. A stream that failed ends with a comment saying how
(``: t=2.004 error StreamInterruptedError: ...``) and no ``[DONE]``, so its replay fails as
a cut stream does (with :class:`~streamkit.errors.StreamTruncatedError`); a stream that
ended with ``finish_reason: "ERROR"`` replays to the same
:class:`~streamkit.errors.ServerStreamError`.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import IO, Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import TimeoutScheduler

from streamkit._decode import ChatEventDecoder
from streamkit._events import ChatEvent, event_to_dict
from streamkit._stats import StreamStats, stream_stats

__all__ = [
    "RecordedEvent",
    "Recording",
    "read_recording",
    "record",
    "replay",
]

FORMAT_LINE = ": streamkit recording 1"
"""The first line of every recording: an SSE comment naming the format and its version."""

_TIME = re.compile(rb"^: ?t=([0-9]+(?:\.[0-9]+)?)(?:[ \r\n]|$)")


# ----------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class RecordedEvent:
    """One recorded event and when it arrived."""

    time: float
    """Seconds from the request to the event's arrival (0 for a body without timing)."""
    event: ChatEvent
    """The event."""


@dataclass(frozen=True)
class Recording:
    """A recorded stream, read back: its events with their times, and how it ended.

    In Jupyter it displays as a summary, events per type and the timing statistics, through
    the formatters ``import streamkit`` registers with IPython (see :func:`~streamkit.render_html`).
    """

    entries: tuple[RecordedEvent, ...]
    """The events with their arrival times, in order."""
    end: float
    """Seconds from the request to the end (completion or error) of the stream."""
    error: Exception | None
    """The error the stream ends with on replay (None when it completes)."""
    note: str | None = None
    """What the recorder wrote about a failed stream (``"StreamInterruptedError: ..."``)."""

    @property
    def events(self) -> list[ChatEvent]:
        """The events alone, in order."""
        return [entry.event for entry in self.entries]

    @property
    def times(self) -> list[float]:
        """The arrival times alone, in order."""
        return [entry.time for entry in self.entries]

    def counts(self) -> dict[str, int]:
        """How many events of each type, in order of first appearance."""
        return dict(Counter(entry.event.type for entry in self.entries))

    def stats(self) -> StreamStats:
        """The stream's timing statistics (time to first token, tokens per second, ...)."""
        return stream_stats(self.times, self.events, self.end)


def read_recording(path: str | PathLike[str]) -> Recording:
    """Read a recorded ``.sse`` file: events, their times, and how the stream ended.

    A body with no timing comments (any raw recorded response) reads as one whose events all
    arrived at time 0. The events go through the same decoder as a live response, so a
    stream cut short or ended by a server error keeps that error, to be raised on replay.

    Args:
        path: The file to read.

    Returns:
        The recording.

    Raises:
        OSError: If the file cannot be read.
    """
    return _parse(Path(path).read_bytes())


def _segments(body: bytes) -> Iterator[tuple[float | None, bytes]]:
    """Split a body at its timing comments: each piece with the time that precedes it."""
    current: float | None = None
    pending: list[bytes] = []
    for line in body.splitlines(keepends=True):
        match = _TIME.match(line)
        if match is not None:
            if pending:
                yield current, b"".join(pending)
                pending = []
            current = float(match.group(1))
        pending.append(line)
    yield current, b"".join(pending)


def _parse(body: bytes) -> Recording:
    decoder = ChatEventDecoder()
    entries: list[RecordedEvent] = []
    error: Exception | None = None
    last = 0.0
    for stamp, chunk in _segments(body):
        last = stamp if stamp is not None else last
        try:
            entries.extend(RecordedEvent(last, event) for event in decoder.feed(chunk))
        except Exception as failure:  # every decoding error ends the replay, as it would live
            error = failure
            break
        if decoder.done:
            break
    if error is None:
        try:
            decoder.finish()
        except Exception as failure:
            error = failure
    note = None
    for line in reversed(body.splitlines()[-3:]):
        found = re.match(rb"^: ?t=[0-9.]+ (error|cancelled)\b ?(.*)$", line)
        if found is not None:
            note = (found.group(1) + b" " + found.group(2)).decode("utf-8", "replace").strip()
            break
    return Recording(tuple(entries), last, error, note)


class _Writer:
    """Writes one recording: a timing comment, then the event, flushed at once."""

    def __init__(self, file: IO[str], clock: Callable[[], float]) -> None:
        self._file = file
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._closed = False
        file.write(FORMAT_LINE + "\n")
        file.flush()

    def _stamp(self) -> str:
        return f": t={max(0.0, self._clock() - self._start):.3f}"

    def event(self, event: ChatEvent) -> None:
        payload = event_to_dict(event)
        if "type" not in payload:  # a model built in Python with its default type
            payload = {"type": event.type, **payload}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            if self._closed:
                return
            self._file.write(f"{self._stamp()}\nevent: {event.type}\ndata: {data}\n\n")
            self._file.flush()

    def close(self, ending: str) -> None:
        """End the recording: ``data: [DONE]`` for a completed stream, else a note."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if ending == "done":
                self._file.write(f"{self._stamp()}\ndata: [DONE]\n\n")
            else:
                self._file.write(f"{self._stamp()} {' '.join(ending.split())}\n")
            self._file.close()


def _error_note(error: Exception) -> str:
    return f"error {type(error).__name__}: {error}"


def _seconds(scheduler: abc.SchedulerBase) -> Callable[[], float]:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

    def clock() -> float:
        now = scheduler.now
        if now.tzinfo is None:
            now = now.replace(tzinfo=datetime.timezone.utc)
        return (now - epoch).total_seconds()

    return clock


def record(
    path: str | PathLike[str], *, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[ChatEvent]], Observable[ChatEvent]]:
    r"""Pass events through unchanged while writing them, with their timing, to ``path``.

    Each subscription (re)writes the file from the start: the events with the seconds since
    the subscription before each, then ``data: [DONE]`` on completion, or a note saying the
    stream failed or was cancelled. See the module documentation for the format; read it
    back with :func:`replay` or :func:`read_recording`.

    Marble::

        source: -a-b-c-|
        record(path)
        result: -a-b-c-|      (and the file holds a, b, c with their times)

    Example:
        >>> import tempfile, pathlib
        >>> from streamkit import from_sse_bytes, record, replay, to_iterator
        >>> body = (b'data: {"type":"message-start","id":"m1"}\n\n'
        ...         b'data: {"type":"message-end","delta":{"finish_reason":"COMPLETE"}}\n\n')
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "reply.sse"
        >>> [e.type for e in to_iterator(from_sse_bytes(body).pipe(record(path)))]
        ['message-start', 'message-end']
        >>> [e.type for e in to_iterator(replay(path, speed=None))]
        ['message-start', 'message-end']

    Args:
        path: The ``.sse`` file to write (created or overwritten on subscription).
        scheduler: Whose clock times the events (a ``TestScheduler`` in tests); by default
            the system's monotonic clock.

    Returns:
        An operator from chat events to the same events.

    Raises:
        OSError: (as ``on_error``, before subscribing upstream) If the file cannot be
            opened; (as ``on_error``) if writing to it fails.
    """
    file_path = Path(path)
    clock = time.monotonic if scheduler is None else _seconds(scheduler)

    def operator(source: Observable[ChatEvent]) -> Observable[ChatEvent]:
        def subscribe(
            observer: abc.ObserverBase[ChatEvent], sub_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            try:
                writer = _Writer(file_path.open("w", encoding="utf-8", newline="\n"), clock)
            except OSError as error:
                observer.on_error(error)
                return Disposable()
            upstream = SerialDisposable()
            failed = threading.Event()

            def on_next(event: ChatEvent) -> None:
                if failed.is_set():
                    return
                try:
                    writer.event(event)
                except OSError as error:
                    failed.set()
                    upstream.dispose()
                    writer.close(_error_note(error))
                    observer.on_error(error)
                    return
                observer.on_next(event)

            def on_error(error: Exception) -> None:
                writer.close(_error_note(error))
                observer.on_error(error)

            def on_completed() -> None:
                writer.close("done")
                observer.on_completed()

            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=sub_scheduler
            )
            return CompositeDisposable(upstream, Disposable(lambda: writer.close("cancelled")))

        return reactivex.create(subscribe)

    return operator


# ----------------------------------------------------------------------------- replay


def replay(
    source: str | PathLike[str] | Recording,
    *,
    speed: float | None = 1.0,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[ChatEvent]:
    """Replay a recorded stream as a cold Observable, at its recorded pace or any other.

    Each event is emitted at its recorded time divided by ``speed``, counted from the
    subscription; the stream then completes, or fails with the error it was recorded with.
    A file is read on each subscription, so a recording re-written in between is seen.

    Marble (recorded ``-a--b-|``)::

        speed=1.0:   -a--b-|
        speed=2.0:   a-b|          (half the time)
        speed=None:  (ab|)         (all at once)

    Example:
        >>> from reactivex.testing import TestScheduler
        >>> from streamkit import Recording, RecordedEvent, MessageStartEvent, replay
        >>> recording = Recording((RecordedEvent(2.0, MessageStartEvent(id="m1")),), 3.0, None)
        >>> scheduler, seen = TestScheduler(), []
        >>> _ = replay(recording, speed=2.0, scheduler=scheduler).subscribe(
        ...     lambda e: seen.append((scheduler.clock, e.type)))
        >>> _ = scheduler.start()
        >>> seen
        [(1.0, 'message-start')]

    Args:
        source: A ``.sse`` file (a recording, or any recorded body) or a :class:`Recording`.
        speed: How many times faster than recorded (``2.0`` is twice as fast); ``None``
            emits everything at once.
        scheduler: Where the timers run (a ``TestScheduler`` in tests). By default the one
            given to ``subscribe``, else ``TimeoutScheduler``; with ``speed=None`` and no
            scheduler, everything is emitted on the subscribing thread.

    Returns:
        An Observable of the recorded events.

    Raises:
        ValueError: If ``speed`` is not a positive number or None.
    """
    if speed is not None and (
        not isinstance(speed, (int, float)) or isinstance(speed, bool) or not speed > 0
    ):
        raise ValueError(f"speed must be a positive number or None, not {speed!r}")

    def subscribe(
        observer: abc.ObserverBase[ChatEvent], sub_scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        try:
            recording = source if isinstance(source, Recording) else read_recording(source)
        except OSError as error:
            observer.on_error(error)
            return Disposable()
        chosen = scheduler or sub_scheduler
        if speed is None and chosen is None:
            return _emit_now(recording, observer)
        return _emit_timed(recording, observer, speed, chosen or TimeoutScheduler.singleton())

    return reactivex.create(subscribe)


def _finish(recording: Recording, observer: abc.ObserverBase[ChatEvent]) -> None:
    if recording.error is not None:
        observer.on_error(recording.error)
    else:
        observer.on_completed()


def _emit_now(recording: Recording, observer: abc.ObserverBase[ChatEvent]) -> abc.DisposableBase:
    disposed = threading.Event()
    for entry in recording.entries:
        if disposed.is_set():
            break
        observer.on_next(entry.event)
    else:
        _finish(recording, observer)
    return Disposable(disposed.set)


def _emit_timed(
    recording: Recording,
    observer: abc.ObserverBase[ChatEvent],
    speed: float | None,
    scheduler: abc.SchedulerBase,
) -> abc.DisposableBase:
    entries = recording.entries
    start = scheduler.now
    disposed = threading.Event()

    def due(seconds: float) -> datetime.datetime:
        return start + datetime.timedelta(seconds=0.0 if speed is None else seconds / speed)

    def step(_: abc.SchedulerBase, position: Any) -> abc.DisposableBase | None:
        # Emit everything due at this moment, then set one timer for the next moment: one
        # timer at a time keeps the events in order and never on two threads at once. The
        # next timer is returned, not stored: the scheduler chains it to this one, so
        # disposing the first disposes whichever is pending, with no race against a timer
        # that fires before its own handle is stored.
        i: int = position
        moment = entries[i].time if i < len(entries) else recording.end
        while i < len(entries) and entries[i].time <= moment:
            if disposed.is_set():
                return None
            observer.on_next(entries[i].event)
            i += 1
        if disposed.is_set():
            return None
        if i < len(entries):
            return scheduler.schedule_absolute(due(entries[i].time), step, i)
        if moment >= recording.end:
            _finish(recording, observer)
            return None
        return scheduler.schedule_absolute(due(recording.end), end)

    def end(_: abc.SchedulerBase, __: Any) -> None:
        if not disposed.is_set():
            _finish(recording, observer)

    first = entries[0].time if entries else recording.end
    timers = scheduler.schedule_absolute(due(first), step, 0)
    return CompositeDisposable(Disposable(disposed.set), timers)
