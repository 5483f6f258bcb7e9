"""What the clients ask of a transport, and the request they hand it.

A transport moves one request's bytes and drives a :class:`~streamkit._engine.StreamEngine`,
which makes every decision. Three ship with streamkit: :class:`~streamkit.HttpxTransport`
(sync), :class:`~streamkit.AsyncHttpxTransport` and :class:`~streamkit.NativeTransport`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

import httpx

from streamkit._engine import Attempt, StreamEngine
from streamkit._events import ChatEvent
from streamkit._stream import Cancellation

__all__ = ["DEFAULT_TIMEOUT", "AsyncTransport", "HttpxRequests", "Outgoing", "Transport"]

_H = TypeVar("_H", httpx.Client, httpx.AsyncClient)

DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
"""Ten seconds to connect, then five minutes for any single read or write."""


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """A request as the client builds it, before a transport makes it an ``httpx.Request``.

    Args:
        url: The absolute URL.
        headers: Every header, already checked (``check_header``).
        content: The JSON body.
        params: Extra query parameters, or None.
        timeout: This request's timeout in seconds (``timeout_in_seconds``), or None to
            use the transport's.
    """

    url: str
    headers: Mapping[str, str]
    content: bytes
    params: Mapping[str, Any] | None = None
    timeout: float | None = None

    def extensions(self) -> dict[str, Any]:
        """The httpx request extensions: the per-request timeout, when there is one."""
        if self.timeout is None:
            return {}
        return {"timeout": httpx.Timeout(self.timeout).as_dict()}


class Transport(Protocol):
    """A sync transport (:class:`~streamkit.HttpxTransport`)."""

    def build_request(self, outgoing: Outgoing) -> httpx.Request:
        """The ``httpx.Request`` to send."""
        ...

    def stream(self, engine: StreamEngine, cancellation: Cancellation) -> Iterator[ChatEvent]:
        """Send ``engine.request`` (retries included) and yield its events."""
        ...

    def close(self) -> None:
        """Release the transport's connections (those it owns)."""
        ...


Push = Callable[[StreamEngine, Callable[[ChatEvent], None]], Awaitable[None]]
"""Stream a request's events to a callback as they are decoded; return at the end."""


class AsyncTransport(Protocol):
    """An asyncio transport (``AsyncHttpxTransport``, ``NativeTransport``)."""

    @property
    def push(self) -> Push | None:
        """A callback-driven way to stream, for Observable subscribers; None if absent."""
        ...

    def build_request(self, outgoing: Outgoing) -> httpx.Request:
        """The ``httpx.Request`` to send."""
        ...

    def stream(self, engine: StreamEngine) -> AsyncIterator[ChatEvent]:
        """Send ``engine.request`` (retries included) and yield its events."""
        ...

    async def aclose(self) -> None:
        """Release the transport's connections (those it owns)."""
        ...


class HttpxRequests(Generic[_H]):
    """What the sync and async httpx transports share: their client and its requests.

    Args:
        http: The ``httpx.Client`` or ``httpx.AsyncClient``.
        owned: Whether it was made here (and so is closed here).
    """

    def __init__(self, http: _H, *, owned: bool) -> None:
        self.http: _H = http
        self.owned = owned

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def build_request(self, outgoing: Outgoing) -> httpx.Request:
        """The request, with the httpx client's defaults (cookies, headers) applied."""
        request: httpx.Request = self.http.build_request(
            "POST",
            outgoing.url,
            content=outgoing.content,
            headers=dict(outgoing.headers),
            params=outgoing.params,
            extensions=outgoing.extensions(),
        )
        return request

    @staticmethod
    def was_read(response: httpx.Response, attempt: Attempt) -> bool:
        """Hand the response head to ``attempt``; True if the body was read already.

        A response read before we got it (as ``httpx.MockTransport`` hands them out) has
        no raw bytes left: its decoded ``content`` is all there is.
        """
        read = response.is_stream_consumed
        attempt.head(response.status_code, response.headers, decoded=read)
        return read
