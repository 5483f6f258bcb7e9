"""The sync transport: a thin loop that reads an ``httpx.Client`` response into the engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from streamkit._engine import DRAIN_LIMIT, DRAIN_WAIT, Attempt, StreamEngine
from streamkit._events import ChatEvent
from streamkit._stream import Cancellation
from streamkit._transport import DEFAULT_TIMEOUT, HttpxRequests
from streamkit._watchdog import Watch, paced, watch
from streamkit.errors import StreamkitError

__all__ = ["HttpxTransport"]


class HttpxTransport(HttpxRequests[httpx.Client]):
    """Streams over a sync ``httpx.Client``: the transport of :class:`~streamkit.Client`.

    httpx brings connection pooling, proxies (``HTTP(S)_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``), TLS and HTTP/2 if you enable it; streamkit reads the raw body and
    decodes it itself, so its limits apply to decompressed bytes too.

    Args:
        http_client: Your own ``httpx.Client``; you keep ownership (``close()`` leaves it
            open). None makes one with ``timeout``.
        timeout: The timeout of the client made here (seconds or ``httpx.Timeout``).
        trust_env: Whether the client made here reads proxies and certificates from the
            environment (httpx's ``trust_env``).
    """

    def __init__(
        self,
        http_client: httpx.Client | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        trust_env: bool = True,
    ) -> None:
        http = http_client or httpx.Client(timeout=timeout, trust_env=trust_env)
        super().__init__(http, owned=http_client is None)

    def close(self) -> None:
        """Close the ``httpx.Client`` if it was made here."""
        if self.owned:
            self.http.close()

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
            response = self.http.send(engine.request, stream=True)
        except httpx.HTTPError as error:
            raise attempt.unanswered(error) from error
        cancellation.attach(response)
        guard = watch(
            engine.idle_timeout, engine.remaining(), lambda _: cancellation.abort_response()
        )
        try:
            read = self.was_read(response, attempt)
            chunks = iter([response.content]) if read else response.iter_raw()
            for chunk in chunks:
                yield from paced(attempt.receive(chunk), guard)
                if attempt.complete:
                    guard.stop()
                    _drain(chunks, watch(None, DRAIN_WAIT, lambda _: cancellation.abort_response()))
                    return
            if not cancellation.cancelled:
                yield from attempt.end(guard.expired)
        except httpx.HTTPError as error:
            failure = None if cancellation.cancelled else attempt.failed(error, guard.expired)
            if failure is not None:
                # The httpx error is the cause, except when our own timeout cut the socket:
                # what httpx then saw (a peer that "closed") would only mislead.
                raise failure from failure.__cause__
        finally:
            guard.stop()
            cancellation.detach()
            response.close()


def _drain(chunks: Iterator[bytes], limit: Watch) -> None:
    """Read what follows ``[DONE]`` (normally just the end of the body) to reuse the connection.

    ``limit`` cuts the connection if the body does not end soon (``DRAIN_WAIT``).
    """
    seen = 0
    with contextlib.suppress(httpx.HTTPError):
        for chunk in chunks:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                break
    limit.stop()
