"""Bridges between Observables and plain iteration, and sources that replay recorded streams.

* :func:`to_iterator` / :func:`to_async_iterator` turn any Observable into a ``for`` /
  ``async for`` loop. Leaving the loop early (``break``, an exception, ``close()``)
  disposes the subscription, which cancels the request.
* :func:`from_sse_bytes`, :func:`from_sse_file`, :func:`from_events` and
  :func:`from_sdk_stream` replay a recorded stream as the same cold Observable a live
  request gives, so every operator works on recordings too.

Backpressure: a stream from :class:`~streamkit.Client` iterated directly is read on the
caller's thread, one chunk at a time, so a slow loop simply slows the reading. For other
Observables the bridge holds at most ``buffer`` items and blocks the producing thread when
it is full (a producer running on the asyncio loop itself cannot be blocked: there the
buffer grows instead).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from reactivex import Observable
from reactivex.abc import DisposableBase

from streamkit._accumulate import MessageAccumulator
from streamkit._decode import (
    DEFAULT_MAX_EVENT_SIZE,
    ChatEventDecoder,
    finish_reason_error,
    truncation_error,
)
from streamkit._events import CHAT_EVENT_ADAPTER, ChatEvent, MessageEndEvent
from streamkit._request import to_jsonable
from streamkit._stream import AsyncChatStream, Cancellation, ChatStream

__all__ = [
    "AsyncStreamIterator",
    "StreamIterator",
    "from_events",
    "from_sdk_stream",
    "from_sse_bytes",
    "from_sse_file",
    "to_async_iterator",
    "to_iterator",
]

_T = TypeVar("_T")

DEFAULT_BUFFER = 64
"""How many items the Observable-to-iterator bridge holds before it blocks the producer."""


# ----------------------------------------------------------------------------- sync


class StreamIterator(Iterator[_T], Generic[_T]):
    """A ``for``-loop view of an Observable; ``close()`` (or leaving a ``with``) cancels it."""

    def __init__(self, source: Observable[_T], *, buffer: int = DEFAULT_BUFFER) -> None:
        self._closed = False
        self._source = source
        self._buffer = buffer
        self._direct: Iterator[Any] | None = None
        self._bridge: _ThreadBridge[_T] | None = None
        if isinstance(source, ChatStream):
            # A generator: nothing is sent before the first next().
            self._direct = source.iterate(Cancellation())

    def __iter__(self) -> StreamIterator[_T]:
        return self

    def __next__(self) -> _T:
        if self._closed:
            raise StopIteration
        try:
            if self._direct is not None:
                item: _T = next(self._direct)
                return item
            if self._bridge is None:  # subscribe on first use: the source is cold
                self._bridge = _ThreadBridge(self._source, self._buffer)
            return self._bridge.next()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop: cancel the request (or dispose the subscription) and free its resources."""
        if self._closed:
            return
        self._closed = True
        if self._direct is not None:
            close = getattr(self._direct, "close", None)
            if close is not None:
                close()
        if self._bridge is not None:
            self._bridge.close()

    def __enter__(self) -> StreamIterator[_T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def to_iterator(source: Observable[_T], *, buffer: int = DEFAULT_BUFFER) -> StreamIterator[_T]:
    r"""Iterate an Observable with a plain ``for`` loop.

    Breaking out of the loop (or an exception in its body) cancels the request. A
    ``with`` block makes that explicit::

        with to_iterator(stream) as events:
            for event in events: ...

    Args:
        source: Any Observable; a client's ``chat_stream`` is read directly on this thread.
        buffer: For other Observables, how many items may wait before the producer blocks.

    Example:
        >>> from streamkit import from_sse_bytes, to_iterator
        >>> body = (b'event: message-start\ndata: {"type":"message-start","id":"m1"}\n\n'
        ...         b'event: message-end\ndata: {"type":"message-end",'
        ...         b'"delta":{"finish_reason":"COMPLETE"}}\n\ndata: [DONE]\n\n')
        >>> [event.type for event in to_iterator(from_sse_bytes(body))]
        ['message-start', 'message-end']
    """
    return StreamIterator(source, buffer=buffer)


class _ThreadBridge(Generic[_T]):
    """Subscribes on a helper thread and hands items over through a bounded buffer."""

    def __init__(self, source: Observable[_T], size: int) -> None:
        self._items: collections.deque[tuple[str, Any]] = collections.deque()
        self._size = max(1, size)
        self._cond = threading.Condition()
        self._closed = False
        self._done = False
        self._subscription: DisposableBase | None = None
        thread = threading.Thread(
            target=self._subscribe, args=(source,), name="streamkit-bridge", daemon=True
        )
        thread.start()

    def _subscribe(self, source: Observable[_T]) -> None:
        subscription = source.subscribe(
            on_next=lambda item: self._put("next", item, wait=True),
            on_error=lambda error: self._put("error", error, wait=False),
            on_completed=lambda: self._put("done", None, wait=False),
        )
        with self._cond:
            self._subscription = subscription
            closed = self._closed
        if closed:
            subscription.dispose()

    def _put(self, kind: str, value: Any, *, wait: bool) -> None:
        with self._cond:
            while wait and len(self._items) >= self._size and not self._closed:
                self._cond.wait()
            if self._closed:
                return
            self._items.append((kind, value))
            self._cond.notify_all()

    def next(self) -> _T:
        with self._cond:
            while not self._items:
                if self._done:
                    raise StopIteration
                self._cond.wait()
            kind, value = self._items.popleft()
            self._cond.notify_all()
        if kind == "next":
            item: _T = value
            return item
        self._done = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            subscription = self._subscription
            self._cond.notify_all()
        if subscription is not None:
            subscription.dispose()


# ----------------------------------------------------------------------------- async


class AsyncStreamIterator(AsyncIterator[_T], Generic[_T]):
    """An ``async for`` view of an Observable; ``aclose()`` (or ``async with``) cancels it.

    Leaving an ``async for`` loop with ``break`` does not run any code in the iterator, so
    use ``async with`` (or call ``aclose()``) to cancel the request at once; an iterator
    left unclosed is cancelled when it is garbage collected.
    """

    def __init__(self, source: Observable[_T], *, buffer: int = DEFAULT_BUFFER) -> None:
        self._closed = False
        self._source = source
        self._buffer = buffer
        self._direct: AsyncIterator[Any] | None = None
        self._bridge: _LoopBridge[_T] | None = None
        if isinstance(source, AsyncChatStream):
            # An async generator: nothing is sent before the first __anext__().
            self._direct = source.aiterate()

    def __aiter__(self) -> AsyncStreamIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        if self._closed:
            raise StopAsyncIteration
        try:
            if self._direct is not None:
                item: _T = await self._direct.__anext__()
                return item
            if self._bridge is None:  # subscribe on first use, on the running loop
                self._bridge = _LoopBridge(self._source, self._buffer)
            return await self._bridge.next()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop: cancel the request (or dispose the subscription) and free its resources."""
        if self._closed:
            return
        self._closed = True
        if self._direct is not None:
            aclose = getattr(self._direct, "aclose", None)
            if aclose is not None:
                await aclose()
        if self._bridge is not None:
            self._bridge.close()

    async def __aenter__(self) -> AsyncStreamIterator[_T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def to_async_iterator(
    source: Observable[_T], *, buffer: int = DEFAULT_BUFFER
) -> AsyncStreamIterator[_T]:
    """Iterate an Observable with ``async for``, on the running asyncio loop.

    Use it as an async context manager so that leaving the loop cancels the request::

        async with to_async_iterator(stream) as events:
            async for event in events: ...

    Args:
        source: Any Observable; an ``AsyncClient`` stream is read directly on this loop.
        buffer: For Observables produced on other threads, how many items may wait
            before the producer blocks.
    """
    return AsyncStreamIterator(source, buffer=buffer)


class _LoopBridge(Generic[_T]):
    """Receives items from any thread and hands them to a coroutine on one loop."""

    def __init__(self, source: Observable[_T], size: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._slots = threading.Semaphore(max(1, size))
        self._closed = threading.Event()
        self._done = False
        self._subscription = source.subscribe(
            on_next=lambda item: self._put("next", item, wait=True),
            on_error=lambda error: self._put("error", error, wait=False),
            on_completed=lambda: self._put("done", None, wait=False),
        )

    def _put(self, kind: str, value: Any, *, wait: bool) -> None:
        if self._closed.is_set():
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._queue.put_nowait((kind, value))
            return
        if wait:
            # Block the producing thread while the consumer is behind.
            while not self._slots.acquire(timeout=0.1):
                if self._closed.is_set():
                    return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._closed.set()

    async def next(self) -> _T:
        if self._done:
            raise StopAsyncIteration
        kind, value = await self._queue.get()
        if kind == "next":
            self._slots.release()
            item: _T = value
            return item
        self._done = True
        if kind == "error":
            raise value
        raise StopAsyncIteration

    def close(self) -> None:
        self._closed.set()
        self._subscription.dispose()


# ----------------------------------------------------------------------------- sources


def from_sse_bytes(
    body: bytes | Iterable[bytes], *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE
) -> ChatStream:
    """Replay a recorded SSE response body as an Observable of events.

    The bytes go through the same decoder as a live response, so the same errors come
    out: a malformed event, a stream cut before ``message-end``, an error inside the
    stream. Subscribing replays synchronously on the subscribing thread.

    Args:
        body: The whole body, or its chunks in order.
        max_event_size: The largest event accepted, in characters.
    """
    chunks: Iterable[bytes] = (body,) if isinstance(body, (bytes, bytearray)) else body

    def events(cancellation: Cancellation) -> Iterator[ChatEvent]:
        decoder = ChatEventDecoder(max_event_size=max_event_size)
        for chunk in chunks:
            if cancellation.cancelled:
                return
            yield from decoder.feed(bytes(chunk))
            if decoder.done:
                return
        decoder.finish()

    return ChatStream(events, threaded=False, description="from SSE bytes")


def from_sse_file(
    path: str | PathLike[str], *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE
) -> ChatStream:
    """Replay a recorded ``.sse`` file (a raw response body) as an Observable of events.

    The file is read lazily, 64 KiB at a time, on each subscription.
    """
    file_path = Path(path)

    def chunks() -> Iterator[bytes]:
        with file_path.open("rb") as file:
            while chunk := file.read(64 * 1024):
                yield chunk

    def events(cancellation: Cancellation) -> Iterator[ChatEvent]:
        return from_sse_bytes(chunks(), max_event_size=max_event_size).iterate(cancellation)

    return ChatStream(events, threaded=False, description=f"from {file_path.name}")


def from_events(events: Iterable[ChatEvent | Mapping[str, Any]]) -> ChatStream:
    """Replay events (typed, or as the JSON objects the server sent) as an Observable.

    Dicts are validated into typed events; an unknown ``type`` becomes ``UnknownEvent``.

    Raises (on subscription):
        pydantic.ValidationError: If a dict is not a valid event.
    """
    items = list(events)

    def replay(cancellation: Cancellation) -> Iterator[ChatEvent]:
        for item in items:
            if cancellation.cancelled:
                return
            if isinstance(item, Mapping):
                yield CHAT_EVENT_ADAPTER.validate_python(dict(item))
            else:
                yield item

    return ChatStream(replay, threaded=False, description=f"from {len(items)} events")


def from_sdk_stream(sdk_events: Iterable[Any]) -> ChatStream:
    """Turn the official ``cohere`` SDK's ``chat_stream`` iterator into an Observable.

    Each SDK event object is converted field for field (extra fields included) into
    streamkit's typed event, and the stream's end follows the same rules as a live one: a
    ``message-end`` with ``finish_reason: "ERROR"`` is delivered and then raises
    :class:`~streamkit.errors.ServerStreamError`, and an iterator that runs out before
    ``message-end`` raises :class:`~streamkit.errors.StreamTruncatedError` (the SDK itself
    reports both as success). The SDK is not imported: any object with pydantic's
    ``model_dump`` (or a plain dict) is accepted. The SDK iterator is consumed lazily on
    subscription, so subscribe once.
    """

    def convert(cancellation: Cancellation) -> Iterator[ChatEvent]:
        accumulator = MessageAccumulator(strict=False)
        count = 0
        for item in sdk_events:
            if cancellation.cancelled:
                return
            event = CHAT_EVENT_ADAPTER.validate_python(to_jsonable(item))
            accumulator.add(event)
            count += 1
            yield event
            if isinstance(event, MessageEndEvent) and event.delta.finish_reason == "ERROR":
                raise finish_reason_error(event, accumulator.snapshot())
        if not accumulator.ended:
            raise truncation_error(count, accumulator.snapshot())

    return ChatStream(convert, threaded=False, description="from an SDK stream")
