"""The Observables a chat request becomes: :class:`ChatStream` and :class:`AsyncChatStream`.

Both are cold: each subscription opens its own request, and disposing the subscription
closes that request's response at once. To share one request between several consumers,
publish it::

    shared = client.chat_stream(model=..., messages=...).pipe(ops.share())

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

import httpx
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from streamkit._events import ChatEvent
from streamkit.errors import NoEventLoopError, StreamkitError

__all__ = [
    "AsyncChatStream",
    "Cancellation",
    "ChatStream",
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

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[ChatEvent],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        loop = _loop_for(scheduler)
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
            if _running_loop() is loop:
                task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)

        return Disposable(dispose)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _loop_for(scheduler: abc.SchedulerBase | None) -> asyncio.AbstractEventLoop:
    if isinstance(scheduler, AsyncIOScheduler):
        return scheduler._loop  # the scheduler has no public accessor for its loop
    loop = _running_loop()
    if loop is None:
        raise NoEventLoopError(
            "AsyncClient streams run on an asyncio loop: subscribe from inside a coroutine, "
            "or pass scheduler=AsyncIOScheduler(loop)"
        )
    return loop
