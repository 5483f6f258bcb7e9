"""The fast transport: HTTP/1.1 on an ``asyncio.Protocol``, parsed by a library, decoded in place.

httpx's async stack (httpx → httpcore → h11 → anyio → asyncio) wakes a task and walks many
coroutine frames for every read. This transport keeps a maintained HTTP/1.1 parser and
drops the rest: each read goes from ``data_received`` to the parser to the
:class:`~streamkit._engine.Attempt`, and the decoded events go to their consumer from there.
The parser is h11 by default, the same one httpx uses (so what one accepts the other
accepts), or llhttp through ``httptools`` (``parser="httptools"``, the ``fast`` extra):
both behind :mod:`streamkit._http11`'s reader interface.

* An Observable subscriber gets each event inside ``data_received``: no task wakes per
  event; one task per stream waits for its end.
* An iterator gets them through a small buffer: above :data:`HIGH_WATER` events the
  transport stops reading (``pause_reading``) until the consumer has drained it to
  :data:`LOW_WATER`, so a slow consumer holds the server back through TCP.

No status line, header, chunk size or length is parsed here: the parser does it. The engine makes
every decision (typed errors, retries, timeouts' meaning, masking). What is left is the
I/O: connecting (TLS verified exactly as httpx does), a small keep-alive pool per origin,
timers for the read timeout, idle timeout and deadline, and flow control. Proxies are not
supported: when ``HTTP(S)_PROXY`` or ``ALL_PROXY`` applies to the URL (and ``NO_PROXY``
does not exempt it) the stream fails with :class:`~streamkit.errors.ProxyNotSupportedError`
before connecting, rather than going around the proxy.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator

import h11
import httpx

from streamkit._engine import DRAIN_LIMIT, DRAIN_WAIT, Attempt, StreamEngine
from streamkit._events import ChatEvent
from streamkit._http11 import END, Event, Head, ParserName, ResponseReader, reader_factory
from streamkit._proxy import proxy_for
from streamkit._transport import DEFAULT_TIMEOUT, Outgoing, Push
from streamkit.errors import InvalidHeaderError, ProxyNotSupportedError, StreamkitError

__all__ = ["HIGH_WATER", "LOW_WATER", "NativeTransport"]

HIGH_WATER = 64
"""Events an iterator may hold unread before the transport stops reading."""
LOW_WATER = 16
"""Events left unread when the transport starts reading again."""

Origin = tuple[str, str, int]
Deliver = Callable[[ChatEvent], None]
ReaderFactory = Callable[[], ResponseReader]


class NativeTransport:
    """The fast asyncio transport for :class:`~streamkit.AsyncClient` (``transport="native"``).

    Several times cheaper in CPU per event than httpx's async stack, so one process keeps
    up with several times more concurrent streams (``benchmarks/RESULTS.md``). HTTP/1.1
    only, parsed by h11 as in httpx or by llhttp (``parser="httptools"``); TLS verified as
    httpx does (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``); gzip and deflate bodies;
    its own keep-alive pool with no cap on connections. No proxies: see
    :class:`~streamkit.errors.ProxyNotSupportedError`.

    Args:
        timeout: Connect timeout and read timeout (the longest wait for any byte), in
            seconds or as an ``httpx.Timeout``; None for none. A request's
            ``timeout_in_seconds`` overrides it.
        max_idle_per_origin: Idle keep-alive connections kept per origin.
        keepalive_expiry: Seconds an idle connection is kept.
        trust_env: Whether to look at the proxy variables at all; False connects directly
            whatever they say (for a server you know needs no proxy, such as loopback).
        parser: The HTTP/1.1 response parser: ``"h11"`` (the default, httpx's own) or
            ``"httptools"`` (llhttp, Node.js's parser, as uvicorn uses it: far less CPU per
            read; the ``fast`` extra, ``pip install 'cohere-streamkit[fast]'``). Both refuse
            the same malformed responses with the same typed errors, llhttp a few more
            (see ``streamkit/_http11.py``). Requests are serialised by h11 either way.

    Raises:
        ParserNotInstalledError: ``parser="httptools"`` without the httptools package.
        ValueError: An unknown ``parser``.
    """

    def __init__(
        self,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_idle_per_origin: int = 20,
        keepalive_expiry: float = 5.0,
        trust_env: bool = True,
        parser: ParserName = "h11",
    ) -> None:
        self._reader = reader_factory(parser)
        self._parser: ParserName = parser
        self._timeout = httpx.Timeout(timeout)
        self._trust_env = trust_env
        self._pool = _Pool(max_idle_per_origin, keepalive_expiry, self._reader)

    def __repr__(self) -> str:
        return (
            "NativeTransport()" if self._parser == "h11" else "NativeTransport(parser='httptools')"
        )

    @property
    def parser(self) -> ParserName:
        """The HTTP/1.1 response parser: ``"h11"`` or ``"httptools"``."""
        return self._parser

    @property
    def push(self) -> Push:
        """Stream to a callback from inside ``data_received`` (what subscribers use)."""
        return self._push

    def build_request(self, outgoing: Outgoing) -> httpx.Request:
        """The request: exactly the headers given, plus ``Host`` and ``Content-Length``."""
        timeout = self._timeout if outgoing.timeout is None else httpx.Timeout(outgoing.timeout)
        return httpx.Request(
            "POST",
            outgoing.url,
            params=outgoing.params,
            headers=dict(outgoing.headers),
            content=outgoing.content,
            extensions={"timeout": timeout.as_dict()},
        )

    async def stream(self, engine: StreamEngine) -> AsyncGenerator[ChatEvent, None]:
        """The request's events for ``async for``, with flow control (see the module doc)."""
        run = _Run(self._pool, engine, self._trust_env)
        loop = asyncio.get_running_loop()
        items: collections.deque[ChatEvent] = collections.deque()
        waiter: asyncio.Future[None] | None = None

        def wake(_: object = None) -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def deliver(event: ChatEvent) -> None:
            items.append(event)
            if len(items) >= HIGH_WATER:
                run.pause()
            elif len(items) == 1:
                wake()

        task = loop.create_task(run.run(deliver), name="streamkit-native-stream")
        task.add_done_callback(wake)
        try:
            while True:
                if items:
                    event = items.popleft()
                    if len(items) <= LOW_WATER:
                        run.resume()
                    run.hold()
                    yield event
                    continue
                if task.done():
                    task.result()  # the stream's error, after every event before it
                    return
                run.touch()
                waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    waiter = None
        finally:
            if not task.done():
                task.cancel()
            # Wait for the connection to be aborted (and the task's error retrieved).
            await asyncio.gather(task, return_exceptions=True)

    async def _push(self, engine: StreamEngine, deliver: Deliver) -> None:
        await _Run(self._pool, engine, self._trust_env).run(deliver)

    async def aclose(self) -> None:
        """Close every idle connection; connections released later are closed at once."""
        self._pool.close()


class _Pool:
    """Idle keep-alive connections by origin, and how new ones are opened."""

    def __init__(self, max_idle: int, expiry: float, reader: ReaderFactory) -> None:
        self._reader = reader
        self._idle: dict[Origin, list[tuple[float, _Connection]]] = {}
        self._max_idle = max_idle
        self._expiry = expiry
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def checkout(self, origin: Origin) -> _Connection | None:
        """An idle connection to ``origin`` still open and fresh, or None."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            since, connection = idle.pop()
            if connection.usable and now - since < self._expiry:
                return connection
            connection.abort()
        return None

    async def connect(self, origin: Origin, timeout: float | None) -> _Connection:
        """A new connection; failures are httpx's ``ConnectError`` / ``ConnectTimeout``."""
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # the same verification as httpx
            context = self._ssl
        loop = asyncio.get_running_loop()
        reader = self._reader
        opening = loop.create_connection(
            lambda: _Connection(reader()),
            host,
            port,
            ssl=context,
            server_hostname=host if context else None,
        )
        try:
            _, connection = await asyncio.wait_for(opening, timeout)
        except asyncio.TimeoutError as error:  # before OSError: on 3.11+ it is one
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from error
        except OSError as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from error
        return connection

    def release(self, origin: Origin, connection: _Connection) -> None:
        """Keep a connection whose exchange ended cleanly, or close it."""
        idle = self._idle.setdefault(origin, [])
        if self._closed or not connection.reuse() or len(idle) >= self._max_idle:
            connection.abort()
            return
        idle.append((time.monotonic(), connection))

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for _, connection in idle:
                connection.abort()
        self._idle.clear()


def _origin(url: httpx.URL) -> Origin:
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(
            f"the native transport speaks http and https, not {url.scheme!r}"
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.raw_host.decode("ascii"), port


class _Run:
    """One request over the native transport, its retries included."""

    def __init__(self, pool: _Pool, engine: StreamEngine, trust_env: bool) -> None:
        self._pool = pool
        self._engine = engine
        self._trust_env = trust_env
        self._connection: _Connection | None = None
        timeout = engine.request.extensions.get("timeout", {})
        self._connect_timeout: float | None = timeout.get("connect")
        self._read_timeout: float | None = timeout.get("read")

    # The iterator's flow control and idle clock, applied to the connection being read.

    def pause(self) -> None:
        if self._connection is not None:
            self._connection.pause()

    def resume(self) -> None:
        if self._connection is not None:
            self._connection.resume()

    def hold(self) -> None:
        if self._connection is not None:
            self._connection.held = True

    def touch(self) -> None:
        connection = self._connection
        if connection is not None and connection.held:
            connection.held = False
            connection.last_event = connection.last_byte = connection.loop.time()

    async def run(self, deliver: Deliver) -> None:
        """Stream the events to ``deliver``; return at the end or raise the typed error.

        An exception ``deliver`` raises ends the stream and is raised here unchanged.
        """
        engine = self._engine
        url = engine.request.url
        if self._trust_env and proxy_for(url) is not None:
            raise engine.final(
                ProxyNotSupportedError(
                    f"a proxy is configured for {url.scheme}://{url.host} (from the environment)"
                    " and the native transport cannot use one: use the default httpx"
                    " transport, or exempt the host with NO_PROXY"
                )
            )
        while True:
            attempt = engine.attempt()
            try:
                await self._exchange(attempt, deliver)
                return
            except StreamkitError as error:
                await asyncio.sleep(engine.wait_before_retry(error))

    async def _exchange(self, attempt: Attempt, deliver: Deliver) -> None:
        try:
            origin = _origin(self._engine.request.url)
            connection = self._pool.checkout(origin)
            if connection is None:
                connection = await self._pool.connect(origin, self._connect_timeout)
        except httpx.HTTPError as error:
            raise attempt.unanswered(error) from error
        self._connection = connection
        try:
            await connection.exchange(
                self._engine, attempt, deliver, self._read_timeout, self._engine.remaining()
            )
        finally:
            self._connection = None
            if connection.reusable:
                self._pool.release(origin, connection)
            else:
                connection.abort()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one exchange at a time, read by a :class:`ResponseReader`."""

    def __init__(self, reader: ResponseReader) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.held = False
        self.paused = False
        self.last_byte = 0.0
        self.last_event = 0.0
        self._reader = reader
        self._eof = False
        self._attempt: Attempt | None = None
        self._deliver: Deliver | None = None
        self._future: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout: float | None = None
        self._idle: float | None = None
        self._deadline_at: float | None = None
        self._drained = 0

    @property
    def usable(self) -> bool:
        """Open, idle and not closed by the server meanwhile."""
        transport = self.transport
        return (
            not self.closed
            and not self._eof
            and transport is not None
            and (not transport.is_closing())
        )

    def reuse(self) -> bool:
        """Ready the connection for the next exchange; False if it cannot be reused."""
        if not self.usable or not self._reader.next_cycle():
            return False
        self._attempt = self._deliver = None
        self._future = None
        return True

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._future is None or self._future.done():
            self.abort()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self.last_byte = self.loop.time()
        try:
            self._pump(self._reader.receive(data))
        except Exception as error:  # nothing may escape to asyncio's "Fatal error" log
            self._broken(error)

    def eof_received(self) -> bool | None:
        self._end_of_input()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and self._future is not None and not self._future.done():
            error = httpx.ReadError(str(exc) or type(exc).__name__)
            error.__cause__ = exc
            self._broken(error)
        else:
            self._end_of_input()

    def _end_of_input(self) -> None:
        try:
            if self._eof:
                return
            self._eof = True
            events = self._reader.receive(b"")
            if self._future is not None and not self._future.done():
                self._pump(events)
        except Exception as error:  # as in data_received
            self._broken(error)

    # ------------------------------------------------------------------ one exchange

    def exchange(
        self,
        engine: StreamEngine,
        attempt: Attempt,
        deliver: Deliver,
        read_timeout: float | None,
        remaining: float | None,
    ) -> asyncio.Future[None]:
        """Send the request; the future ends with the response, or its typed error."""
        self._attempt = attempt
        self._deliver = deliver
        self._future = future = self.loop.create_future()
        self.reusable = self.held = self.paused = False
        self._drained = 0
        now = self.loop.time()
        self.last_byte = self.last_event = now
        self._read_timeout = read_timeout
        self._idle = engine.idle_timeout
        self._deadline_at = now + remaining if remaining is not None else None
        request = engine.request
        try:
            payload = self._reader.request(request)
        except h11.LocalProtocolError as error:
            # check_header refused these already; h11 is the second line of defence.
            self._fail(InvalidHeaderError(f"the request cannot be sent: {error}"))
            return future
        if not self.usable:
            self._broken(httpx.ConnectError("the connection was closed"))
            return future
        assert self.transport is not None
        self.transport.write(payload)
        self._arm()
        return future

    def abort(self) -> None:
        """Close the socket now, whatever is buffered."""
        self.closed = True
        self.reusable = False
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.last_byte = self.loop.time()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _pump(self, events: Iterable[Event]) -> None:
        """Hand the reader's events to the attempt until they run out or the exchange ends."""
        attempt, deliver, future = self._attempt, self._deliver, self._future
        assert attempt is not None and deliver is not None and future is not None
        if future.done():
            return
        try:
            for event in events:
                if type(event) is bytes:
                    if attempt.complete:
                        self._drained += len(event)
                        if self._drained > DRAIN_LIMIT:
                            self._succeed()
                            return
                        continue
                    if not self._feed(attempt.receive(event), deliver):
                        return
                    if attempt.complete:  # [DONE]: the body should end at once; don't wait long
                        self._cancel_timer()
                        self._timer = self.loop.call_later(DRAIN_WAIT, self._succeed)
                elif event is END:
                    self.reusable = True  # read to its end: fine to reuse, even after an error
                    if self._feed(attempt.end(), deliver):
                        self._succeed()
                    return
                else:
                    assert isinstance(event, Head)
                    try:
                        attempt.head(event.status_code, httpx.Headers(event.headers))
                    except StreamkitError as error:
                        self._fail(error)
                        return
                    self.last_event = self.loop.time()  # the idle clock runs from the head on
                    self._cancel_timer()
                    self._arm()
        except httpx.RemoteProtocolError as error:  # the reader's: the response is broken
            self._broken(error)

    def _feed(self, events: Iterator[ChatEvent], deliver: Deliver) -> bool:
        """Deliver ``events``; False once the exchange failed (a typed or consumer error)."""
        delivered = False
        try:
            for event in events:
                delivered = True
                deliver(event)
        except Exception as error:  # the engine's typed errors, or the consumer's own
            self._fail(error)
            return False
        if delivered:  # keep-alive comments are bytes, not events: the idle clock runs on
            self.last_event = self.loop.time()
        return True

    # ------------------------------------------------------------------ endings

    def _broken(self, error: BaseException, *, timeout: bool = False) -> None:
        """The transport failed: the typed error, or success if ``[DONE]`` already came."""
        self.reusable = False
        if self._attempt is None or self._future is None or self._future.done():
            self.abort()
            return
        failure = self._attempt.broken(error, timeout=timeout)
        if failure is None:
            self._succeed()
        else:
            self._fail(failure)

    def _succeed(self) -> None:
        self._cancel_timer()
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._cancel_timer()
        if self._future is not None and not self._future.done():
            self._future.set_exception(error)
        if not self.reusable:
            self.pause()  # nothing more of this body is wanted

    # ------------------------------------------------------------------ timers

    def _arm(self) -> None:
        due = self._due(self.loop.time())
        if due is not None:
            self._timer = self.loop.call_at(due, self._on_timer)

    def _due(self, now: float) -> float | None:
        times = []
        waiting = self.held or self.paused  # the consumer's time is not the server's
        answered = self._attempt is not None and self._attempt.answered
        if self._deadline_at is not None:
            times.append(self._deadline_at)
        if self._idle is not None and answered:
            times.append(now + self._idle if waiting else self.last_event + self._idle)
        if self._read_timeout is not None:
            times.append(
                now + self._read_timeout if waiting else self.last_byte + self._read_timeout
            )
        return min(times) if times else None

    def _on_timer(self) -> None:
        try:
            self._expire()
        except Exception as error:  # as in data_received
            self._broken(error)

    def _expire(self) -> None:
        self._timer = None
        attempt = self._attempt
        if attempt is None or self._future is None or self._future.done():
            return
        now = self.loop.time()
        waiting = self.held or self.paused
        reason: str | None = None
        if self._deadline_at is not None and now >= self._deadline_at:
            reason = "deadline"
        elif (
            self._idle is not None
            and attempt.answered
            and not waiting
            and now >= self.last_event + self._idle
        ):
            reason = "idle"
        elif (
            self._read_timeout is not None
            and not waiting
            and now >= self.last_byte + self._read_timeout
        ):
            self._broken(httpx.ReadTimeout("timed out"), timeout=True)
            return
        if reason is None:
            self._arm()
            return
        self.reusable = False
        if attempt.complete:
            self._succeed()
        else:
            self._fail(attempt.timed_out(reason))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
