"""The asyncio httpx transport: a thin loop that reads an ``httpx.AsyncClient`` into the engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from streamkit._engine import DRAIN_LIMIT, DRAIN_WAIT, Attempt, StreamEngine
from streamkit._events import ChatEvent
from streamkit._stream import shutdown_socket
from streamkit._transport import DEFAULT_TIMEOUT, HttpxRequests, Push
from streamkit._watchdog import Watch, paced, watch
from streamkit.errors import StreamkitError

__all__ = ["AsyncHttpxTransport"]


class AsyncHttpxTransport(HttpxRequests[httpx.AsyncClient]):
    """Streams over an ``httpx.AsyncClient``: :class:`~streamkit.AsyncClient`'s default.

    Any ``httpx.AsyncClient`` works, including one on another HTTP stack such as
    ``httpx_aiohttp.HttpxAiohttpClient`` (aiohttp underneath). The client made here keeps
    httpx's default pool of 100 connections: for more concurrent streams pass your own,
    e.g. ``httpx.AsyncClient(limits=httpx.Limits(max_connections=1000))``.

    Args:
        http_client: An ``httpx.AsyncClient`` of yours, which ``aclose()`` leaves open;
            by default one is made (and closed) here.
        timeout: Seconds or an ``httpx.Timeout``, for the client made here.
        trust_env: httpx's ``trust_env`` for the client made here (proxies and
            certificates from the environment).
    """

    def __init__(
        self,
        http_client: httpx.AsyncClient | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        trust_env: bool = True,
    ) -> None:
        http = http_client or httpx.AsyncClient(timeout=timeout, trust_env=trust_env)
        super().__init__(http, owned=http_client is None)

    @property
    def push(self) -> Push | None:
        """None: subscribers iterate :meth:`stream`."""
        return None

    async def aclose(self) -> None:
        """Close the ``httpx.AsyncClient`` if it was made here."""
        if self.owned:
            await self.http.aclose()

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
            response = await self.http.send(engine.request, stream=True)
        except httpx.HTTPError as error:
            raise attempt.unanswered(error) from error
        guard = watch(engine.idle_timeout, engine.remaining(), lambda _: shutdown_socket(response))
        try:
            if self.was_read(response, attempt):
                chunks: AsyncIterator[bytes] = _single(response.content)
            else:
                chunks = response.aiter_raw()
            async for chunk in chunks:
                for event in paced(attempt.receive(chunk), guard):
                    yield event
                if attempt.complete:
                    guard.stop()
                    limit = watch(None, DRAIN_WAIT, lambda _: shutdown_socket(response))
                    await _drain(chunks, limit)
                    return
            for event in attempt.end(guard.expired):
                yield event
        except httpx.HTTPError as error:
            failure = attempt.failed(error, guard.expired)
            if failure is not None:
                # The httpx error is the cause, except when our own timeout cut the socket:
                # what httpx then saw (a peer that "closed") would only mislead.
                raise failure from failure.__cause__
        finally:
            guard.stop()
            await response.aclose()


async def _drain(chunks: AsyncIterator[bytes], limit: Watch) -> None:
    """Read on past ``[DONE]`` (normally just the end of the body) to reuse the connection.

    ``limit`` cuts the connection if the body does not end soon (``DRAIN_WAIT``).
    """
    seen = 0
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in chunks:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                break
    limit.stop()


async def _single(content: bytes) -> AsyncIterator[bytes]:
    yield content
