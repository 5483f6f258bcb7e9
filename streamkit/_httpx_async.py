"""The asyncio httpx transport: a thin loop that reads an ``httpx.AsyncClient`` into the engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from streamkit._engine import DRAIN_LIMIT, Attempt, StreamEngine
from streamkit._events import ChatEvent
from streamkit._stream import shutdown_socket
from streamkit._transport import DEFAULT_TIMEOUT, Outgoing, Push
from streamkit._watchdog import watch
from streamkit.errors import StreamkitError

__all__ = ["AsyncHttpxTransport"]


class AsyncHttpxTransport:
    """Streams over an ``httpx.AsyncClient``: :class:`~streamkit.AsyncClient`'s default.

    Any ``httpx.AsyncClient`` works, including one on another HTTP stack such as
    ``httpx_aiohttp.HttpxAiohttpClient`` (aiohttp underneath). The client made here keeps
    httpx's default pool of 100 connections: for more concurrent streams pass your own,
    e.g. ``httpx.AsyncClient(limits=httpx.Limits(max_connections=1000))``.

    Args:
        http_client: Your own ``httpx.AsyncClient``; you keep ownership (``aclose()``
            leaves it open). None makes one with ``timeout``.
        timeout: The timeout of the client made here (seconds or ``httpx.Timeout``).
    """

    def __init__(
        self,
        http_client: httpx.AsyncClient | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._owns = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return "AsyncHttpxTransport()"

    @property
    def push(self) -> Push | None:
        """None: subscribers iterate :meth:`stream`."""
        return None

    def build_request(self, outgoing: Outgoing) -> httpx.Request:
        """The request, with the ``httpx.AsyncClient``'s defaults (cookies, headers) applied."""
        return self._http.build_request(
            "POST",
            outgoing.url,
            content=outgoing.content,
            headers=dict(outgoing.headers),
            params=outgoing.params,
            extensions=outgoing.extensions(),
        )

    async def aclose(self) -> None:
        """Close the ``httpx.AsyncClient`` if it was made here."""
        if self._owns:
            await self._http.aclose()

    async def stream(self, engine: StreamEngine) -> AsyncGenerator[ChatEvent, None]:
        """Send the request, retrying as the engine decides, and yield its events."""
        while True:
            attempt = engine.attempt()
            try:
                # aclosing: closing this generator closes the response before aclose()
                # returns, not later in the loop's finaliser hook.
                async with contextlib.aclosing(self._exchange(engine, attempt)) as events:
                    async for event in events:
                        yield event
                return
            except StreamkitError as error:
                await asyncio.sleep(engine.wait_before_retry(error))

    async def _exchange(
        self, engine: StreamEngine, attempt: Attempt
    ) -> AsyncGenerator[ChatEvent, None]:
        try:
            response = await self._http.send(engine.request, stream=True)
        except httpx.HTTPError as error:
            failure = attempt.broken(error, timeout=isinstance(error, httpx.TimeoutException))
            assert failure is not None  # nothing was read: never complete
            raise failure from error
        guard = watch(engine.idle_timeout, engine.remaining(), lambda _: shutdown_socket(response))
        try:
            # A response read before we got it (httpx.MockTransport's) has no raw bytes left.
            read = response.is_stream_consumed
            attempt.head(response.status_code, response.headers, decoded=read)
            chunks = _once(response.content) if read else response.aiter_raw()
            async for chunk in chunks:
                for event in attempt.receive(chunk):
                    if guard is not None:  # the consumer's time is not the server's silence
                        guard.hold()
                    yield event
                    if guard is not None:
                        guard.touch()
                if attempt.complete:
                    await _drain(chunks)
                    return
            if guard is not None and guard.expired:
                # Our watchdog shut the socket down, which can read as a clean end of body.
                raise httpx.ReadError("the socket was shut down")
            for event in attempt.end():
                yield event
        except httpx.HTTPError as error:
            expired = guard.expired if guard is not None else None
            if expired is not None:
                failure = attempt.timed_out(expired)
            else:
                failure = attempt.broken(error, timeout=isinstance(error, httpx.TimeoutException))
            if failure is not None:
                raise failure from error
        finally:
            if guard is not None:
                guard.stop()
            await response.aclose()


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read on past ``[DONE]`` (normally just the end of the body) to reuse the connection."""
    seen = 0
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in chunks:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                return


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
