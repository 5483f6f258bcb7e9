"""The Observables a chat request becomes: :class:`ChatStream` and :class:`AsyncChatStream`.

Both are cold: each subscription opens its own request, and disposing the subscription
closes that request's response at once. To share one request between several consumers,
publish it, subscribe them all, then connect (the request starts then, so none misses an
event, which ``ops.share()`` cannot promise a consumer that subscribes late)::

    shared = client.chat_stream(model=..., messages=...).pipe(ops.publish())
    shared.subscribe(speak)
    shared.subscribe(log)
    shared.connect()

A :class:`ChatStream` pulls its events from a plain iterator factory. Subscribing runs the
iterator on a daemon thread of its own (so ``subscribe`` returns at once), while
:func:`~streamkit.to_iterator` iterates it directly on the caller's thread, with no thread
and no queue. An :class:`AsyncChatStream` runs its async iterator as a task on the
caller's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

import httpx
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from streamkit._accumulate import MessageAccumulator
from streamkit._events import ChatEvent, ContentDeltaEvent
from streamkit._message import ChatResponse
from streamkit.errors import NoEventLoopError, StreamkitError, StreamTruncatedError

__all__ = [
    "AsyncChatStream",
    "Cancellation",
    "ChatStream",
    "cancel_task",
    "loop_for",
    "running_loop",
    "shutdown_socket",
]


class Cancellation:
    """Lets a subscription abort the request another thread is reading.

    The reading thread registers its live response; ``cancel()`` then shuts the socket
    down, which wakes a read blocked in the kernel at once (closing the response from
    another thread would not).
    """

    __slots__ = ("_event", "_lock", "_response", "cancelled")

    def __init__(self) -> None:
        self.cancelled = False
        self._response: httpx.Response | None = None
        self._lock = threading.Lock()
        self._event = threading.Event()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (a retry's backoff); True if cancelled meanwhile."""
        return self._event.wait(seconds)

    def abort_response(self) -> None:
        """Break the current response's connection (a timeout fired) without cancelling."""
        with self._lock:
            response = self._response
        if response is not None:
            shutdown_socket(response)

    def attach(self, response: httpx.Response) -> None:
        """Register the response being read (the reader thread calls this)."""
        with self._lock:
            self._response = response
            cancelled = self.cancelled
        if cancelled:
            shutdown_socket(response)

    def detach(self) -> None:
        """Forget the response: it is closed or complete (the reader thread calls this)."""
        with self._lock:
            self._response = None

    def cancel(self) -> None:
        """Stop the request: safe from any thread, any number of times."""
        with self._lock:
            self.cancelled = True
            response = self._response
        self._event.set()
        if response is not None:
            shutdown_socket(response)


def shutdown_socket(response: httpx.Response) -> None:
    """Shut the response's socket down, so a read blocked on it (in any thread) returns now."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    # Sync streams hand out a socket.socket; asyncio hands out an asyncio.trsock.TransportSocket,
    # which is no socket.socket but has shutdown(). Checking for socket.socket alone left async
    # streams' idle timeout and deadline unable to interrupt a blocked read.
    shutdown = getattr(sock, "shutdown", None)
    if callable(shutdown):
        with contextlib.suppress(OSError):
            shutdown(socket.SHUT_RDWR)


class _EventSource(Protocol):
    def __call__(self, cancellation: Cancellation) -> Iterator[ChatEvent]: ...


class ChatStream(Observable[ChatEvent]):
    """A cold Observable of chat events, pulled from an iterator.

    Subscribing starts the request on a daemon thread (``threaded=True``, the client's
    streams) or replays synchronously on the subscribing thread (recorded sources).
    Iterate it with :func:`streamkit.to_iterator` for plain ``for`` loops.
    """

    def __init__(self, source: _EventSource, *, threaded: bool, description: str) -> None:
        self._source = source
        self._threaded = threaded
        self._description = description
        super().__init__()

    def __repr__(self) -> str:
        return f"<ChatStream {self._description}>"

    def iterate(self, cancellation: Cancellation | None = None) -> Iterator[ChatEvent]:
        """Open the source and return its events as a plain iterator on this thread."""
        return self._source(cancellation or Cancellation())

    def text(self) -> Iterator[str]:
        """The reply's text as it arrives: one request, read on this thread.

        Leaving the loop early (``break``, an exception) closes the request. A failure
        raises its typed error (with the partial message) where the loop is.

        Example:
            >>> from streamkit import Client
            >>> with Client.offline() as client:
            ...     stream = client.chat_stream(model="command-a-03-2025",
            ...                                 messages=[{"role": "user", "content": "Hi"}])
            ...     text = "".join(stream.text())
            >>> text.startswith("Offline answer")
            True
        """
        events = self.iterate()
        try:
            for event in events:
                if isinstance(event, ContentDeltaEvent) and event.text:
                    yield event.text
        finally:
            _close(events)

    def final_message(self, on_text: Callable[[str], object] | None = None) -> ChatResponse:
        """Send the request, wait for the whole reply and return it.

        With ``on_text``, each piece of text is handed to it as it arrives: print a reply
        live and keep the final message, from one request::

            reply = stream.final_message(on_text=lambda text: print(text, end=""))

        Args:
            on_text: Called with each text delta, on this thread, as it arrives.

        Returns:
            The reply, shaped as Cohere's non-streaming response.

        Raises:
            StreamError: The stream failed; ``partial_message`` holds what came before.
            StreamTruncatedError: The stream gave no event at all.
        """
        events = self.iterate()
        try:
            return _fold(events, on_text)
        finally:
            _close(events)

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[ChatEvent],
        scheduler: abc.SchedulerBase | None = None,  # noqa: ARG002 - the stream picks its thread
    ) -> abc.DisposableBase:
        cancellation = Cancellation()

        def run() -> None:
            events = self._source(cancellation)
            failure: BaseException | None = None
            try:
                for event in events:
                    if cancellation.cancelled:
                        return
                    observer.on_next(event)
            except BaseException as error:  # every failure goes to the observer
                failure = error
            finally:
                # Close the response before the terminal signal, so that an observer that
                # reacts to it (a new request on a pool of one) finds the connection free.
                close = getattr(events, "close", None)
                if close is not None:
                    close()
            if cancellation.cancelled:
                return
            if failure is not None:
                observer.on_error(failure if isinstance(failure, Exception) else _wrap(failure))
            else:
                observer.on_completed()

        if self._threaded:
            thread = threading.Thread(target=run, name="streamkit-stream", daemon=True)
            thread.start()
        else:
            run()
        return Disposable(cancellation.cancel)


def _close(events: Iterator[ChatEvent]) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        close()


def _fold(events: Iterator[ChatEvent], on_text: Callable[[str], object] | None) -> ChatResponse:
    reply = _Reply(on_text)
    for event in events:
        reply.add(event)
    return reply.result()


class _Reply:
    """The final message of a stream, folded one event at a time."""

    def __init__(self, on_text: Callable[[str], object] | None) -> None:
        self._accumulator = MessageAccumulator()
        self._on_text = on_text
        self._events = 0

    def add(self, event: ChatEvent) -> None:
        self._accumulator.add(event)
        self._events += 1
        if self._on_text is not None and isinstance(event, ContentDeltaEvent) and event.text:
            self._on_text(event.text)

    def result(self) -> ChatResponse:
        if not self._events:
            raise StreamTruncatedError("the stream ended before its first event")
        return self._accumulator.snapshot()


async def _aclosable(events: AsyncIterator[ChatEvent]) -> AsyncGenerator[ChatEvent, None]:
    """``events`` as an async generator, so ``aclosing`` can close it (and its request)."""
    try:
        async for event in events:
            yield event
    finally:
        aclose: Callable[[], Awaitable[object]] | None = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _wrap(error: BaseException) -> Exception:
    # A KeyboardInterrupt or SystemExit on the producer thread still ends the stream.
    wrapped = StreamkitError(f"the stream was stopped by {type(error).__name__}")
    wrapped.__cause__ = error
    return wrapped


class _AsyncEventSource(Protocol):
    def __call__(self) -> AsyncIterator[ChatEvent]: ...


class _AsyncEventPush(Protocol):
    def __call__(self, on_next: Callable[[ChatEvent], None]) -> Awaitable[None]: ...


class AsyncChatStream(Observable[ChatEvent]):
    """A cold Observable of chat events that runs on the caller's asyncio loop.

    Each subscription starts one task on the running loop (or the loop of an
    ``AsyncIOScheduler`` passed to ``subscribe``); disposing the subscription cancels
    the task, which closes the response. Iterate it with
    :func:`streamkit.to_async_iterator` for ``async for`` loops.

    With a ``push`` source (the native transport), a subscription's task runs
    ``push(on_next)``, which calls ``on_next`` for every event as it is decoded, with no
    task wake-up per event, and returns (or raises) when the stream ends.
    """

    def __init__(
        self,
        source: _AsyncEventSource,
        *,
        description: str,
        push: _AsyncEventPush | None = None,
    ) -> None:
        self._source = source
        self._push = push
        self._description = description
        super().__init__()

    def __repr__(self) -> str:
        return f"<AsyncChatStream {self._description}>"

    def aiterate(self) -> AsyncIterator[ChatEvent]:
        """Open the source and return its events as an async iterator on this loop."""
        return self._source()

    async def text(self) -> AsyncGenerator[str, None]:
        """The reply's text as it arrives, for ``async for``: one request on this loop.

        Close it to leave early (``async with contextlib.aclosing(stream.text())``): that
        closes the request at once. A failure raises its typed error.
        """
        async with contextlib.aclosing(_aclosable(self._source())) as events:
            async for event in events:
                if isinstance(event, ContentDeltaEvent) and event.text:
                    yield event.text

    async def final_message(self, on_text: Callable[[str], object] | None = None) -> ChatResponse:
        """Send the request, wait for the whole reply and return it (``await`` it).

        See :meth:`ChatStream.final_message`; ``on_text`` runs on the loop.
        """
        reply = _Reply(on_text)
        async with contextlib.aclosing(_aclosable(self._source())) as events:
            async for event in events:
                reply.add(event)
        return reply.result()

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[ChatEvent],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        loop = loop_for(scheduler)
        disposed = False

        async def run() -> None:
            events = self._source()
            failure: Exception | None = None
            try:
                async for event in events:
                    observer.on_next(event)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failure = error
            finally:
                # Close the response before the terminal signal. The other order lost it:
                # on_error makes reactivex dispose the subscription, which cancels this very
                # task, and the cancellation then interrupted the close, leaking the
                # connection whenever the user's on_next raised.
                aclose: Callable[[], Any] | None = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            if disposed:
                return
            if failure is not None:
                observer.on_error(failure)
            else:
                observer.on_completed()

        async def run_push(push: _AsyncEventPush) -> None:
            def on_next(event: ChatEvent) -> None:
                if not disposed:
                    observer.on_next(event)

            failure: Exception | None = None
            try:
                # Returns once the connection is released or aborted: the response is
                # closed before the terminal signal, as in run().
                await push(on_next)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failure = error
            if disposed:
                return
            if failure is not None:
                observer.on_error(failure)
            else:
                observer.on_completed()

        work = run() if self._push is None else run_push(self._push)
        task = loop.create_task(work, name="streamkit-stream")

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            cancel_task(loop, task)

        return Disposable(dispose)


def cancel_task(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` of ``loop`` from any thread (a disposal may come from anywhere)."""
    if running_loop() is loop:
        task.cancel()
    else:
        loop.call_soon_threadsafe(task.cancel)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running on this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def loop_for(scheduler: abc.SchedulerBase | None) -> asyncio.AbstractEventLoop:
    """The loop an async subscription runs on: its scheduler's, else the running one.

    Raises:
        NoEventLoopError: If there is neither.
    """
    if isinstance(scheduler, AsyncIOScheduler):
        return scheduler._loop  # the scheduler has no public accessor for its loop
    loop = running_loop()
    if loop is None:
        raise NoEventLoopError(
            "AsyncClient streams run on an asyncio loop: subscribe from inside a coroutine, "
            "or pass scheduler=AsyncIOScheduler(loop)"
        )
    return loop
