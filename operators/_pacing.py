"""Shaping text in time: a steady typist's pace, and letting a stalled sentence go.

Both operators keep timers on a reactivex scheduler (the one passed in, else the one the
subscription runs on, else ``TimeoutScheduler``), so tests drive them with ``TestScheduler``
and never sleep. Each is a hand-written ``subscribe`` closure: a timer that emits between
upstream items, and a backlog that must be released on completion and attached to the error,
are state that reactivex composition cannot reach at the terminal events. A lock serialises
the timer thread with the upstream thread, so the output keeps the Rx grammar.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from reactivex import Observable, abc, create
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import TimeoutScheduler

from operators._pending import attach_pending
from operators._rechunk import SentenceSplitter, WordSplitter

__all__ = ["idle_flush", "smooth"]


def _check_seconds(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")


def smooth(
    delay: float,
    by: Literal["word", "char"] = "word",
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[str]], Observable[str]]:
    """Release text at a steady pace, one word (or character) every ``delay`` seconds.

    Like a typist: text that arrives in bursts comes out evenly. A unit that arrives when the
    typist is idle (``delay`` has passed since the last one) goes out at once; the others
    queue and go out one per ``delay``. Nothing is reordered or dropped: the output joined is
    the input joined. A word is a run of non-space characters with the whitespace after it
    (as :func:`buffer_words` cuts them), so it is released once the next word begins. On
    completion the backlog is released at the same pace, then the output completes. On an
    upstream error the error is passed on at once, with the unreleased text riding on it
    (read it with :func:`pending`).

    Marble (``delay`` = 2 ticks, by word)::

        -a-b-|          a: 'One two three ', b: 'four'
        smooth(2)
        -a-b-c-(d|)     a: 'One ', b: 'two ', c: 'three ', d: 'four'

    Example:
        >>> import reactivex
        >>> from reactivex.testing import TestScheduler
        >>> clock = TestScheduler()
        >>> out = []
        >>> source = reactivex.of("One two three ", "four")
        >>> _ = source.pipe(smooth(0.5, scheduler=clock)).subscribe(
        ...     lambda word: out.append((clock.clock, word)))
        >>> _ = clock.start()
        >>> out
        [(0, 'One '), (0.5, 'two '), (1.0, 'three '), (1.5, 'four')]

    Args:
        delay: Seconds between two units (scheduler time).
        by: ``"word"`` (the default) or ``"char"`` (one character at a time).
        scheduler: Where the timers run; defaults to the subscription's scheduler, else
            ``TimeoutScheduler``.

    Returns:
        An operator from ``Observable[str]`` to ``Observable[str]``.

    Raises:
        ValueError: ``delay`` is negative, or ``by`` is neither ``"word"`` nor ``"char"``.
    """
    _check_seconds("delay", delay)
    if by not in ("word", "char"):
        raise ValueError(f'by must be "word" or "char", not {by!r}')

    def operator(source: Observable[str]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = scheduler or subscribe_scheduler or TimeoutScheduler.singleton()
            lock = threading.RLock()
            words = WordSplitter() if by == "word" else None
            backlog: deque[str] = deque()
            timer = SerialDisposable()
            ticking = False  # a unit went out less than `delay` ago: the next one must wait
            completed = False  # upstream completed: finish the backlog, then complete
            stopped = False

            def stop() -> None:
                nonlocal stopped
                stopped = True
                timer.dispose()

            def release() -> None:
                # One step of the typist: called when the pace allows a unit to go out now.
                nonlocal ticking
                if not backlog:
                    ticking = False  # idle: the next unit may go out as soon as it comes
                    return
                observer.on_next(backlog.popleft())
                if completed and not backlog:
                    stop()
                    observer.on_completed()
                    return
                ticking = True
                timer.disposable = clock.schedule_relative(delay, tick)

            def tick(_: abc.SchedulerBase, __: Any = None) -> None:
                with lock:
                    if not stopped:
                        release()

            def on_next(text: str) -> None:
                with lock:
                    if stopped:
                        return
                    try:
                        backlog.extend(words.feed(text) if words is not None else list(text))
                    except Exception as error:  # e.g. a non-str item: on_error, per Rx
                        stop()
                        observer.on_error(error)
                        return
                    if not ticking:
                        release()

            def on_error(error: Exception) -> None:
                with lock:
                    if stopped:
                        return
                    stop()
                    rest = "".join(backlog) + (words.flush() if words is not None else "")
                    attach_pending(error, rest)
                    observer.on_error(error)

            def on_completed() -> None:
                nonlocal completed
                with lock:
                    if stopped:
                        return
                    completed = True
                    if words is not None and (rest := words.flush()):
                        backlog.append(rest)
                    if not backlog:
                        stop()
                        observer.on_completed()
                    elif not ticking:
                        release()

            upstream = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(upstream, timer, Disposable(stop))

        return create(subscribe)

    return operator


def idle_flush(
    seconds: float, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[str]], Observable[str]]:
    """Buffer text into sentences, and let the partial one go when the stream stalls.

    :func:`buffer_sentences` with a timeout: each text piece (e.g. from :func:`text_only`)
    goes into the same sentence splitter, whole sentences are emitted as soon as they are
    complete, and when no piece has arrived for ``seconds`` the unfinished sentence is
    emitted as it stands, so a reader or a voice is never left waiting on a slow model.
    Splitting goes on from there (a code block keeps its state). The output stays lossless:
    joined, it is the input joined; but where a stall cut a sentence, the pieces depend on
    the timing. The rest is flushed on completion; on an upstream error it rides on the
    error (read it with :func:`pending`). Use it in place of :func:`buffer_sentences`, not
    after it: a whole sentence in waits for the next one to begin, like any sentence.

    Marble (``seconds`` = 3 ticks)::

        -a-b-----c-|        a: 'Hi. How', b: ' are', c: ' you?'
        idle_flush(3)
        -a----b----(c|)     a: 'Hi. ', b: 'How are', c: ' you?'

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from reactivex.testing import TestScheduler
        >>> clock = TestScheduler()
        >>> out = []
        >>> source = reactivex.merge(reactivex.of("Hi. How are"),
        ...                          reactivex.timer(5.0, scheduler=clock).pipe(
        ...                              ops.map(lambda _: " you?")))
        >>> _ = source.pipe(idle_flush(2.0, scheduler=clock)).subscribe(
        ...     lambda piece: out.append((clock.clock, piece)))
        >>> _ = clock.start()
        >>> out
        [(0, 'Hi. '), (2.0, 'How are'), (5.0, ' you?')]

    Args:
        seconds: How long the stream may stall (scheduler time) before the partial sentence
            is emitted.
        scheduler: Where the timer runs; defaults to the subscription's scheduler, else
            ``TimeoutScheduler``.

    Returns:
        An operator from ``Observable[str]`` to ``Observable[str]``.

    Raises:
        ValueError: ``seconds`` is negative.
    """
    _check_seconds("seconds", seconds)

    def operator(source: Observable[str]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = scheduler or subscribe_scheduler or TimeoutScheduler.singleton()
            lock = threading.RLock()
            splitter = SentenceSplitter()
            timer = SerialDisposable()
            stopped = False

            def stop() -> None:
                nonlocal stopped
                stopped = True
                timer.dispose()

            def on_idle(_: abc.SchedulerBase, __: Any = None) -> None:
                with lock:
                    if not stopped and (partial := splitter.take()):
                        observer.on_next(partial)

            def on_next(text: str) -> None:
                with lock:
                    if stopped:
                        return
                    try:
                        sentences = splitter.feed(text)
                    except Exception as error:  # e.g. a non-str item: on_error, per Rx
                        stop()
                        observer.on_error(error)
                        return
                    for sentence in sentences:
                        observer.on_next(sentence)
                    # Restart the stall timer; with nothing held there is nothing to flush.
                    timer.disposable = (
                        clock.schedule_relative(seconds, on_idle)
                        if splitter.pending
                        else Disposable()
                    )

            def on_error(error: Exception) -> None:
                with lock:
                    if stopped:
                        return
                    stop()
                    attach_pending(error, splitter.flush())
                    observer.on_error(error)

            def on_completed() -> None:
                with lock:
                    if stopped:
                        return
                    stop()
                    if rest := splitter.flush():
                        observer.on_next(rest)
                    observer.on_completed()

            upstream = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(upstream, timer, Disposable(stop))

        return create(subscribe)

    return operator
