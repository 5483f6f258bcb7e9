"""The sync transport: a thin loop that reads an ``httpx.Client`` response into the engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from streamkit._engine import DRAIN_LIMIT, Attempt, StreamEngine
from streamkit._events import ChatEvent
from streamkit._stream import Cancellation
from streamkit._transport import DEFAULT_TIMEOUT, Outgoing
from streamkit._watchdog import watch
from streamkit.errors import StreamkitError

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Streams over a sync ``httpx.Client``: the transport of :class:`~streamkit.Client`.

    httpx brings connection pooling, proxies (``HTTP(S)_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``), TLS and HTTP/2 if you enable it; streamkit reads the raw body and
    decodes it itself, so its limits apply to decompressed bytes too.

    Args:
        http_client: Your own ``httpx.Client``; you keep ownership (``close()`` leaves it
            open). None makes one with ``timeout``.
        timeout: The timeout of the client made here (seconds or ``httpx.Timeout``).
    """

    def __init__(
        self,
        http_client: httpx.Client | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._owns = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return "HttpxTransport()"

    def build_request(self, outgoing: Outgoing) -> httpx.Request:
        """The request, with the ``httpx.Client``'s defaults (cookies, headers) applied."""
        return self._http.build_request(
            "POST",
            outgoing.url,
            content=outgoing.content,
            headers=dict(outgoing.headers),
            params=outgoing.params,
            extensions=outgoing.extensions(),
        )

    def close(self) -> None:
        """Close the ``httpx.Client`` if it was made here."""
        if self._owns:
            self._http.close()

    def stream(self, engine: StreamEngine, cancellation: Cancellation) -> Iterator[ChatEvent]:
        """Send the request, retrying as the engine decides, and yield its events."""
        while True:
            attempt = engine.attempt()
            try:
                yield from self._exchange(engine, attempt, cancellation)
                return
            except StreamkitError as error:
                if cancellation.cancelled:
                    raise engine.final(error) from error.__cause__
                if cancellation.wait(engine.wait_before_retry(error)):
                    return

    def _exchange(
        self, engine: StreamEngine, attempt: Attempt, cancellation: Cancellation
    ) -> Iterator[ChatEvent]:
        try:
            response = self._http.send(engine.request, stream=True)
        except httpx.HTTPError as error:
            failure = attempt.broken(error, timeout=isinstance(error, httpx.TimeoutException))
            assert failure is not None  # nothing was read: never complete
            raise failure from error
        cancellation.attach(response)
        guard = watch(
            engine.idle_timeout, engine.remaining(), lambda _: cancellation.abort_response()
        )
        try:
            # A response read before we got it (httpx.MockTransport's) has no raw bytes left.
            read = response.is_stream_consumed
            attempt.head(response.status_code, response.headers, decoded=read)
            chunks = iter([response.content]) if read else response.iter_raw()
            for chunk in chunks:
                for event in attempt.receive(chunk):
                    if guard is not None:  # the consumer's time is not the server's silence
                        guard.hold()
                    yield event
                    if guard is not None:
                        guard.touch()
                if attempt.complete:
                    _drain(chunks)
                    return
            if cancellation.cancelled:
                return
            if guard is not None and guard.expired:
                # Our watchdog shut the socket down, which can read as a clean end of body.
                raise httpx.ReadError("the socket was shut down")
            yield from attempt.end()
        except httpx.HTTPError as error:
            if cancellation.cancelled:
                return
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
            cancellation.detach()
            response.close()


def _drain(chunks: Iterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (normally just the end of the body) to reuse the connection."""
    seen = 0
    with contextlib.suppress(httpx.HTTPError):
        for chunk in chunks:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                return
