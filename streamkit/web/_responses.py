"""Starlette responses that stream a chat to a browser: the I/O around `_encode`.

The body is an async generator on the server's event loop. A sync stream is consumed on a
thread of its own (`_events`), so it never blocks the loop; when the client hangs up,
Starlette stops iterating and `_EventStreamResponse` closes the generator, which cancels the
upstream request at once (the Observable's subscription is disposed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import Any

import anyio
import reactivex
from reactivex import operators as ops
from reactivex.scheduler import NewThreadScheduler

try:
    from starlette.background import BackgroundTask
    from starlette.responses import StreamingResponse
    from starlette.types import Receive, Scope, Send
except ImportError as error:  # say which extra brings it, not just what is missing
    raise ImportError(
        "streamkit.web needs Starlette: pip install 'cohere-streamkit[web]'"
    ) from error

from streamkit._adapters import AsyncStreamIterator, to_async_iterator
from streamkit._events import ChatEvent, ErrorEvent, MessageEndEvent
from streamkit._stream import AsyncChatStream
from streamkit.web._encode import (
    DONE,
    KEEP_ALIVE,
    UI_MESSAGE_STREAM_HEADERS,
    UIMessageStreamEncoder,
    encode_sse_data,
    encode_sse_event,
    error_text,
)

__all__ = ["DEFAULT_KEEP_ALIVE", "sse_response", "ui_message_stream_response"]

DEFAULT_KEEP_ALIVE = 15.0
"""Seconds of silence after which a ``: keep-alive`` comment is sent (proxies often close
idle connections after 30 to 60 s)."""

_SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx: pass each event on at once
}


class _EventStreamResponse(StreamingResponse):
    """A `StreamingResponse` that always closes its body generator, even on a disconnect.

    Starlette leaves the iterator to the garbage collector when sending fails; closing it
    here cancels the upstream request now, not at some later collection.
    """

    def __init__(
        self,
        body: Any,
        *,
        headers: Mapping[str, str],
        status_code: int,
        background: BackgroundTask | None,
    ) -> None:
        super().__init__(body, status_code=status_code, headers=headers, background=background)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._body.aclose()


def ui_message_stream_response(
    stream: reactivex.Observable[ChatEvent],
    *,
    keep_alive: float = DEFAULT_KEEP_ALIVE,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> StreamingResponse:
    """A Starlette response streaming a Cohere chat as an AI SDK UI message stream.

    What ``useChat`` (``DefaultChatTransport``) of the ``ai`` package (6.x) reads: SSE
    ``data:`` lines with one UI message chunk each (see `UIMessageStreamEncoder` for the
    mapping), ``data: [DONE]`` at the end, and the header ``x-vercel-ai-ui-message-stream:
    v1``. A failure (an HTTP error status, an in-stream ``ERROR``, a timeout, a truncated
    stream) becomes an ``error`` chunk with streamkit's masked message, then the stream ends.

    The request is sent when the response starts streaming (streams are cold), and cancelled
    when the client disconnects.

    Args:
        stream: A `ChatStream`, an `AsyncChatStream`, or any Observable of chat events; a sync
            one is consumed on its own thread.
        keep_alive: Seconds of silence before a ``: keep-alive`` comment is sent.
        status_code: The response's status.
        headers: Extra response headers.
        background: A Starlette task to run after the response is sent.

    Returns:
        A `StreamingResponse` to return from a Starlette or FastAPI endpoint.

    Raises:
        ValueError: ``keep_alive`` is not a positive number of seconds.
    """
    _check_keep_alive(keep_alive)

    async def body() -> AsyncIterator[bytes]:
        encoder = UIMessageStreamEncoder()

        def chunks(events: Iterable[Mapping[str, Any]]) -> bytes:
            return b"".join(encode_sse_data(chunk) for chunk in events)

        try:
            async with contextlib.aclosing(_paced(stream, keep_alive)) as events:
                async for event in events:
                    if event is None:
                        yield KEEP_ALIVE
                        continue
                    data = chunks(encoder.encode(event))
                    if data:
                        yield data
                    if encoder.ended:
                        break
                else:
                    yield chunks(encoder.finish())
        except Exception as error:  # every failure becomes the protocol's `error` chunk
            yield chunks(encoder.fail(error))
        yield DONE

    return _respond(body(), UI_MESSAGE_STREAM_HEADERS, headers, status_code, background)


def sse_response(
    stream: reactivex.Observable[ChatEvent],
    *,
    keep_alive: float = DEFAULT_KEEP_ALIVE,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> StreamingResponse:
    """A Starlette response re-emitting a chat's Cohere events as plain SSE.

    Each event goes out as Cohere frames it (``event: <type>``, ``data: <JSON>``), so a
    browser's ``EventSource`` or any Cohere SSE reader (``streamkit.from_sse_bytes`` too) can
    read it; ``data: [DONE]`` ends it. A failure becomes ``event: error`` with ``data:
    {"type": "error", "message": <streamkit's masked message>}``, then ``data: [DONE]``.

    Args:
        stream: A `ChatStream`, an `AsyncChatStream`, or any Observable of chat events; a sync
            one is consumed on its own thread.
        keep_alive: Seconds of silence before a ``: keep-alive`` comment is sent.
        status_code: The response's status.
        headers: Extra response headers.
        background: A Starlette task to run after the response is sent.

    Returns:
        A `StreamingResponse` to return from a Starlette or FastAPI endpoint.

    Raises:
        ValueError: ``keep_alive`` is not a positive number of seconds.
    """
    _check_keep_alive(keep_alive)

    async def body() -> AsyncIterator[bytes]:
        try:
            async with contextlib.aclosing(_paced(stream, keep_alive)) as events:
                async for event in events:
                    if event is None:
                        yield KEEP_ALIVE
                        continue
                    yield encode_sse_event(event)
                    if isinstance(event, ErrorEvent) or (
                        isinstance(event, MessageEndEvent) and event.delta.finish_reason == "ERROR"
                    ):
                        break  # the error is said; the stream's own error would say it twice
        except Exception as error:  # every failure becomes an `error` event
            yield encode_sse_event(ErrorEvent(message=error_text(error)))
        yield DONE

    return _respond(body(), _SSE_HEADERS, headers, status_code, background)


def _check_keep_alive(keep_alive: float) -> None:
    if not keep_alive > 0:
        raise ValueError(f"keep_alive must be > 0 seconds, got {keep_alive!r}")


def _respond(
    body: AsyncIterator[bytes],
    defaults: Mapping[str, str],
    headers: Mapping[str, str] | None,
    status_code: int,
    background: BackgroundTask | None,
) -> StreamingResponse:
    merged = {**defaults, **(headers or {})}
    return _EventStreamResponse(
        body, headers=merged, status_code=status_code, background=background
    )


def _events(stream: reactivex.Observable[ChatEvent]) -> AsyncStreamIterator[ChatEvent]:
    if isinstance(stream, AsyncChatStream):
        return to_async_iterator(stream)  # read directly on this loop
    # Any other Observable may do its work in subscribe(): give it a thread of its own.
    return to_async_iterator(stream.pipe(ops.subscribe_on(NewThreadScheduler())))


async def _paced(
    stream: reactivex.Observable[ChatEvent], keep_alive: float
) -> AsyncGenerator[ChatEvent | None, None]:
    """The stream's events, with a ``None`` after every ``keep_alive`` seconds of silence."""
    events = _events(stream)
    pending: asyncio.Future[ChatEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keep_alive)
            if not done:
                yield None
                continue
            future, pending = pending, None
            try:
                event = future.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        # Starlette cancels the body when the client disconnects, and anyio cancels every
        # await inside a cancelled scope again: shield the cleanup, or closing the upstream
        # response would itself be cancelled and the request left running.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()
