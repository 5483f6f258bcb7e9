"""A lean HTTP/1.1 client on ``asyncio.Protocol`` for AsyncClient streams (``transport="native"``).

httpx's async stack (httpx → httpcore → h11 → anyio → asyncio) costs ~60-90 µs of CPU per
event: a task wake-up and many coroutine frames for every read. This module speaks just
the one exchange a chat stream needs, a streaming ``POST``, straight on an asyncio
protocol: the request is the ``httpx.Request`` :class:`~streamkit._client._ClientConfig`
builds (serialised byte for byte, except ``Accept-Encoding``, narrowed to the codings
decoded here), and the body is de-chunked (or read by ``Content-Length``, or to the close),
decompressed (gzip, deflate) and fed to :class:`~streamkit._decode.ChatEventDecoder` inside
``data_received``:

* An Observable subscriber gets each event from ``data_received`` itself: no task
  wakes up per event; one task per stream waits for its end.
* An iterator gets them through a small buffer: above :data:`HIGH_WATER` events the
  transport stops reading (``pause_reading``) until the consumer has drained it down to
  :data:`LOW_WATER`, so a slow consumer holds the server back through TCP.

Everything else is the httpx transport's behaviour, reused from ``_client``: retries before
the first delivered event, the typed errors with their partial message (transport failures
keep an httpx exception as ``__cause__``, itself caused by the ``OSError`` or
``ssl.SSLError`` when there was one), the connect and first-byte timeouts from the client's
``httpx.Timeout``, ``idle_timeout`` and ``deadline`` (one ``loop.call_at`` timer per stream,
re-armed lazily when it fires rather than on every event), and the masking of the request's
credentials in every error. A body that ended cleanly returns its connection to a small
per-origin idle pool owned by the client; anything else (cancellation, an error, a body cut
short) aborts it, so the server sees the disconnect at once.

Not supported here: proxies (including the ``HTTP(S)_PROXY`` variables), HTTP/2, and
any ``Content-Encoding`` but gzip and deflate (none other is asked for). TLS verifies
certificates exactly as httpx does (``httpx.create_ssl_context()``: certifi's bundle, or
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx

from streamkit._client import (
    _DRAIN_LIMIT,
    _ERROR_BODY_LIMIT,
    _check_stream_response,
    _connection_error,
    _interrupted,
    _log_retry,
    _needs_body,
    _request_secrets,
    _retry_delay,
    _StreamPlan,
    _timed_out,
)
from streamkit._decode import ChatEventDecoder
from streamkit._events import ChatEvent
from streamkit.errors import (
    APIConnectionError,
    APIStatusError,
    StreamInterruptedError,
    StreamkitError,
    mask_secrets,
)

__all__ = ["HIGH_WATER", "LOW_WATER", "NativePool", "NativeStream", "iterate"]

HIGH_WATER = 64
"""Events an iterator may hold unread before the transport stops reading."""
LOW_WATER = 16
"""Events left unread when the transport starts reading again."""

_KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default)
_MAX_IDLE_PER_ORIGIN = 20  # httpx's default max_keepalive_connections
_MAX_HEAD = 64 * 1024
_MAX_CHUNK_LINE = 4096
_CODINGS = frozenset({"gzip", "deflate", "identity"})

Origin = tuple[str, str, int]
Deliver = Callable[[ChatEvent], None]

# Response phases, chunked-body states and body framings.
_HEAD, _BODY, _DONE = 0, 1, 2
_SIZE, _DATA, _DATA_END, _TRAILER = 0, 1, 2, 3
_CHUNKED, _LENGTH, _CLOSE, _NONE = 0, 1, 2, 3


class NativePool:
    """The idle keep-alive connections of one ``AsyncClient``, by origin."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[tuple[float, _Connection]]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def checkout(self, origin: Origin) -> _Connection | None:
        """An idle connection to ``origin`` still open and fresh, or None."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            since, connection = idle.pop()
            if not connection.closed and now - since < _KEEPALIVE_EXPIRY:
                return connection
            connection.abort()
        return None

    async def connect(self, origin: Origin, timeout: float | None) -> _Connection:
        """Open a new connection; failures are httpx's ConnectError / ConnectTimeout."""
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                # The same verification as the httpx transport, so switching is transparent.
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        opening = loop.create_connection(
            _Connection, host, port, ssl=context, server_hostname=host if context else None
        )
        try:
            _, connection = await asyncio.wait_for(opening, timeout)
        except asyncio.TimeoutError as error:  # before OSError: on 3.11+ it is one
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from error
        except OSError as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from error
        return connection

    def release(self, origin: Origin, connection: _Connection) -> None:
        """Keep a connection whose response ended cleanly for the next request."""
        idle = self._idle.setdefault(origin, [])
        if self._closed or connection.closed or len(idle) >= _MAX_IDLE_PER_ORIGIN:
            connection.abort()
            return
        idle.append((time.monotonic(), connection))

    def close(self) -> None:
        """Close every idle connection; connections released later are closed at once."""
        self._closed = True
        for idle in self._idle.values():
            for _, connection in idle:
                connection.abort()
        self._idle.clear()


def _serialise(request: httpx.Request) -> bytes:
    """The request's bytes on the wire: its headers as httpx would send them."""
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if name.lower() == b"accept-encoding":
            # Only what this module decodes (httpx may offer br or zstd).
            codings = [c.strip() for c in value.decode("latin-1").split(",")]
            kept = [c for c in codings if c.split(";")[0].strip().lower() in _CODINGS]
            if not kept:
                continue
            value = ", ".join(kept).encode("latin-1")
        parts += [name, b": ", value, b"\r\n"]
    parts.append(b"\r\n")
    parts.append(request.content)
    return b"".join(parts)


def _origin(url: httpx.URL) -> Origin:
    scheme = url.scheme
    if scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"the native transport speaks http and https, not {scheme}")
    host = url.raw_host.decode("ascii")
    return scheme, host, url.port or (443 if scheme == "https" else 80)


class NativeStream:
    """One chat request streamed over the native transport, retries included.

    Args:
        pool: The client's idle connections.
        request: The request ``_ClientConfig.request`` built.
        plan: Its retry policy, limits and timeouts.
    """

    def __init__(self, pool: NativePool, request: httpx.Request, plan: _StreamPlan) -> None:
        self.pool = pool
        self.request = request
        self.plan = plan
        self._connection: _Connection | None = None
        self._delivered = False
        timeout = request.extensions.get("timeout", {})
        self._connect_timeout: float | None = timeout.get("connect")
        self._read_timeout: float | None = timeout.get("read")

    # The iterator's flow control and idle clock, applied to the connection being read.

    def pause(self) -> None:
        """Stop reading from the socket (the consumer is behind)."""
        if self._connection is not None:
            self._connection.pause()

    def resume(self) -> None:
        """Read from the socket again."""
        if self._connection is not None:
            self._connection.resume()

    def hold(self) -> None:
        """The consumer has an event: the idle clock stops."""
        if self._connection is not None:
            self._connection.held = True

    def touch(self) -> None:
        """The consumer waits for the server again: the idle clock restarts now."""
        connection = self._connection
        if connection is not None and connection.held:
            connection.held = False
            connection.last_event = connection.last_byte = connection.loop.time()

    async def run(self, deliver: Deliver) -> None:
        """Stream the events to ``deliver`` (called from ``data_received``); raise at the end.

        An exception ``deliver`` raises ends the stream and is raised here unchanged.
        """
        try:
            await self._run(deliver)
        except StreamkitError as error:
            mask_secrets(error, _request_secrets(self.request))
            raise

    async def _run(self, deliver: Deliver) -> None:
        # The retry loop of _client._astream_events, over _attempt.
        plan = self.plan
        started = time.monotonic()
        retries = 0
        origin = _origin(self.request.url)
        payload = _serialise(self.request)
        while True:
            self._delivered = False
            try:
                await self._attempt(origin, payload, deliver, started)
                return
            except (APIConnectionError, APIStatusError, StreamInterruptedError) as error:
                delay = None if self._delivered else _retry_delay(plan, retries, error)
                if delay is None:
                    raise
                remaining = plan.remaining(started)
                if remaining is not None and delay >= remaining:
                    raise
                _log_retry(error, delay, retries, plan)
                await asyncio.sleep(delay)
                retries += 1

    async def _attempt(
        self, origin: Origin, payload: bytes, deliver: Deliver, started: float
    ) -> None:
        """One request (on a fresh connection if a kept-alive one turns out closed)."""
        stale_ok = True
        while True:
            connection = self.pool.checkout(origin)
            reused = connection is not None
            if connection is None:
                try:
                    connection = await self.pool.connect(origin, self._connect_timeout)
                except httpx.TransportError as error:
                    raise _connection_error(error, self.request) from error
            self._connection = connection
            decoder = ChatEventDecoder(
                max_event_size=self.plan.max_event_size, max_line_size=self.plan.max_line_size
            )
            finished = connection.start(
                self, payload, decoder, deliver, self._read_timeout, self.plan.remaining(started)
            )
            try:
                await finished
            except APIConnectionError:
                if reused and stale_ok and not connection.answered:
                    # A kept-alive connection the server closed meanwhile: once more, afresh.
                    stale_ok = False
                    continue
                raise
            finally:
                self._delivered = connection.delivered
                self._connection = None
                if connection.reusable:
                    connection.detach()
                    self.pool.release(origin, connection)
                else:
                    connection.abort()
            return


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, reading one response at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.answered = False
        self.delivered = False
        self.held = False
        self.paused = False
        self.last_byte = 0.0
        self.last_event = 0.0
        self._stream: NativeStream | None = None
        self._future: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

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
            if self._stream is None:  # bytes on an idle connection: it cannot be reused
                self.abort()
            return
        self.answered = True
        self.last_byte = self.loop.time()
        if self._phase == _BODY:
            self._body_bytes(data)
        else:
            self._head_bytes(data)

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    # ------------------------------------------------------------------ one exchange

    def start(
        self,
        stream: NativeStream,
        payload: bytes,
        decoder: ChatEventDecoder,
        deliver: Deliver,
        read_timeout: float | None,
        remaining: float | None,
    ) -> asyncio.Future[None]:
        """Send the request; the future ends with the response (or its typed error)."""
        self._stream = stream
        self._request = stream.request
        self._plan = stream.plan
        self._decoder = decoder
        self._deliver = deliver
        self._future = future = self.loop.create_future()
        self.reusable = self.answered = self.delivered = self.held = self.paused = False
        self._phase = _HEAD
        self._head = b""
        self._response: httpx.Response | None = None
        self._framing = _NONE
        self._keep_alive = True
        self._chunk_state = _SIZE
        self._left = 0
        self._carry = b""
        self._decompress: Any = None
        self._sse = True
        self._error_body: list[bytes] = []
        self._error_size = 0
        self._drained = 0
        now = self.loop.time()
        self.last_byte = self.last_event = now
        self._read_timeout = read_timeout
        self._idle = self._plan.idle_timeout
        self._deadline_at = now + remaining if remaining is not None else None
        if self.closed or self.transport is None or self.transport.is_closing():
            self._fail(
                _connection_error(httpx.ConnectError("the connection was closed"), self._request)
            )
            return future
        self.transport.write(payload)
        self._arm()
        return future

    def detach(self) -> None:
        """Forget the finished exchange (the connection goes back to the pool)."""
        self._stream = None
        self._future = None

    def abort(self) -> None:
        """Close the socket now (RST or FIN), whatever is buffered."""
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

    # ------------------------------------------------------------------ head

    def _head_bytes(self, data: bytes) -> None:
        head = self._head + data if self._head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _MAX_HEAD:
                self._protocol_error("the response head is too large")
            else:
                self._head = head
            return
        self._head = b""
        rest = head[end + 4 :]
        if not self._parse_head(head[:end]):
            return
        if self._phase == _HEAD:  # an interim 1xx answer: the real head follows
            if rest:
                self._head_bytes(rest)
            return
        if self._framing == _NONE:
            self._body_end(rest)
        elif rest:
            self._body_bytes(rest)

    def _parse_head(self, head: bytes) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, _ = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            self._protocol_error("the response is not HTTP/1.x")
            return False
        status = int(code)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                self._protocol_error("a response header is malformed")
                return False
            headers.append((name, value.strip()))
        if 100 <= status < 200:
            return True
        response = httpx.Response(status, headers=headers, request=self._request)
        self._response = response
        found = response.headers
        connection = found.get("connection", "").lower()
        self._keep_alive = version == "HTTP/1.1" and "close" not in connection
        if status in (204, 304):
            self._framing = _NONE
        elif "chunked" in found.get("transfer-encoding", "").lower():
            self._framing = _CHUNKED
        elif "content-length" in found:
            try:
                self._left = int(found["content-length"])
            except ValueError:
                self._protocol_error("the Content-Length is not a number")
                return False
            if self._left < 0:
                self._protocol_error("the Content-Length is negative")
                return False
            self._framing = _LENGTH if self._left else _NONE
        else:
            self._framing = _CLOSE
        coding = found.get("content-encoding", "").strip().lower()
        if coding == "gzip":
            self._decompress = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._decompress = _Deflate()
        self._sse = not _needs_body(response)
        self._phase = _BODY
        self.last_event = self.loop.time()  # the idle clock runs from the head on
        if self._idle is not None:
            self._cancel_timer()
            self._arm()
        return True

    # ------------------------------------------------------------------ body framing

    def _body_bytes(self, data: bytes) -> None:
        framing = self._framing
        if framing == _CHUNKED:
            self._dechunk(data)
        elif framing == _LENGTH:
            left = self._left
            if len(data) < left:
                self._left = left - len(data)
                self._body(data)
            else:
                self._left = 0
                self._body(data[:left] if len(data) > left else data)
                if self._phase == _BODY:
                    self._body_end(data[left:])
        else:
            self._body(data)

    def _dechunk(self, data: bytes) -> None:
        """Chunked transfer coding (RFC 9112 §7.1), split anywhere across reads."""
        if self._carry:
            data = self._carry + data
            self._carry = b""
        pos = 0
        end = len(data)
        while pos < end and self._phase == _BODY:
            state = self._chunk_state
            if state == _DATA:
                stop = pos + self._left
                if stop <= end:
                    piece = data if pos == 0 and stop == end else data[pos:stop]
                    self._chunk_state = _DATA_END
                    pos = stop
                else:
                    piece = data[pos:] if pos else data
                    self._left -= end - pos
                    pos = end
                self._body(piece)
            elif state == _SIZE:
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._keep_carry(data[pos:])
                    return
                line = data[pos:newline].split(b";", 1)[0].strip()
                pos = newline + 1
                try:
                    size = int(line, 16)
                except ValueError:
                    size = -1
                if size < 0 or line[:1] in (b"+", b"-"):
                    self._protocol_error("a chunk size is malformed")
                    return
                if size:
                    self._left = size
                    self._chunk_state = _DATA
                else:
                    self._chunk_state = _TRAILER
            elif state == _DATA_END:
                if data[pos] == 0x0A:
                    pos += 1
                elif data[pos] == 0x0D:
                    if pos + 1 == end:
                        self._keep_carry(data[pos:])
                        return
                    if data[pos + 1] != 0x0A:
                        self._protocol_error("a chunk does not end with CRLF")
                        return
                    pos += 2
                else:
                    self._protocol_error("a chunk is longer than its size")
                    return
                self._chunk_state = _SIZE
            else:  # trailer fields, up to an empty line
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._keep_carry(data[pos:])
                    return
                line = data[pos:newline]
                pos = newline + 1
                if line in (b"", b"\r"):
                    self._body_end(data[pos:])
                    return

    def _keep_carry(self, rest: bytes) -> None:
        if len(rest) > _MAX_CHUNK_LINE:
            self._protocol_error("a chunk-size or trailer line is too long")
        else:
            self._carry = rest

    # ------------------------------------------------------------------ body contents

    def _body(self, data: bytes) -> None:
        if self._decompress is not None:
            try:
                data = self._decompress.decompress(data)
            except zlib.error as error:
                self._transport_error(httpx.RemoteProtocolError(f"undecodable body: {error}"))
                return
            if not data:
                return
        decoder = self._decoder
        if not self._sse:
            if self._error_size < _ERROR_BODY_LIMIT:
                self._error_body.append(data)
            self._error_size += len(data)
            if self._error_size > _ERROR_BODY_LIMIT:
                self._finish_error_body(complete=False)
            return
        if decoder.done:
            self._drain(len(data))
            return
        count = decoder.events
        deliver = self._deliver
        try:
            for event in decoder.feed(data):
                self.delivered = True
                deliver(event)
        except Exception as error:  # typed decoder errors, or the consumer's own
            self._fail(error)
            return
        if decoder.events != count:
            self.last_event = self.loop.time()
        if decoder.done:
            self._drain(0)

    def _drain(self, size: int) -> None:
        """After ``[DONE]``: read on to the end of the body to reuse the connection."""
        self._drained += size
        if self._drained > _DRAIN_LIMIT:
            self._succeed()

    def _body_end(self, rest: bytes) -> None:
        """The body ended as its framing says (terminator, length, or close)."""
        if self._phase != _BODY and self._phase != _HEAD:
            return
        self._phase = _DONE
        clean = not rest and self._framing != _CLOSE and self._keep_alive
        if self._decompress is not None:
            with contextlib.suppress(zlib.error):
                tail = self._decompress.flush()
                if tail and self._sse and not self._decoder.done:
                    self._phase = _BODY
                    self._body(tail)
                    if self._future is None or self._future.done():
                        return
                    self._phase = _DONE
                elif tail and not self._sse:
                    self._error_body.append(tail)
        if not self._sse:
            self.reusable = clean
            self._finish_error_body(complete=True)
            return
        if not self._decoder.done:
            try:
                self._decoder.finish()
            except Exception as error:
                self.reusable = clean
                self._fail(error, keep=True)
                return
        self.reusable = clean
        self._succeed()

    def _finish_error_body(self, *, complete: bool) -> None:
        assert self._response is not None
        if not complete:
            self.reusable = False
        body = b"".join(self._error_body)[:_ERROR_BODY_LIMIT]
        try:
            _check_stream_response(self._response, body)
        except Exception as error:
            self._fail(error, keep=complete)
            return
        self._succeed()  # unreachable in practice: _sse was False for a reason

    # ------------------------------------------------------------------ endings

    def _ended(self, exc: Exception | None) -> None:
        """The server closed (``exc`` None) or the connection broke."""
        future = self._future
        if future is None or future.done():
            return
        if self._phase == _BODY and self._framing == _CLOSE and exc is None:
            self._body_end(b"")
            return
        if self._phase == _BODY and self._sse and self._decoder.done:
            self._succeed()  # [DONE] came; the rest of the body does not matter
            return
        if exc is not None:
            error: httpx.TransportError = httpx.ReadError(str(exc) or type(exc).__name__)
            error.__cause__ = exc
        elif self._phase == _HEAD:
            error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
        else:
            what = "incomplete chunked read" if self._framing == _CHUNKED else "body too short"
            error = httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({what})"
            )
        self._transport_error(error)

    def _transport_error(self, error: httpx.TransportError) -> None:
        if self._phase == _HEAD or not self._sse:
            typed: Exception = _connection_error(error, self._request)
        else:
            typed = _interrupted(error, self._decoder, self._request, None, self._plan)
        typed.__cause__ = error
        self._fail(typed)

    def _protocol_error(self, message: str) -> None:
        self._transport_error(httpx.RemoteProtocolError(message))

    def _succeed(self) -> None:
        self._phase = _DONE
        self._cancel_timer()
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def _fail(self, error: BaseException, *, keep: bool = False) -> None:
        self._phase = _DONE
        if not keep:
            self.reusable = False
        self._cancel_timer()
        future = self._future
        if future is not None and not future.done():
            future.set_exception(error)
        if not self.reusable and not self.paused and self.transport is not None:
            # Stop reading now: nothing more of this body is wanted.
            self.paused = True
            self.transport.pause_reading()

    # ------------------------------------------------------------------ timers

    def _arm(self) -> None:
        due = self._due(self.loop.time())
        if due is not None:
            self._timer = self.loop.call_at(due, self._on_timer)

    def _due(self, now: float) -> float | None:
        times = []
        waiting = self.held or self.paused  # the consumer's time is not the server's
        if self._deadline_at is not None:
            times.append(self._deadline_at)
        if self._idle is not None and self._phase == _BODY:
            times.append(now + self._idle if waiting else self.last_event + self._idle)
        if self._read_timeout is not None:
            times.append(
                now + self._read_timeout if waiting else self.last_byte + self._read_timeout
            )
        return min(times) if times else None

    def _on_timer(self) -> None:
        self._timer = None
        future = self._future
        if future is None or future.done():
            return
        now = self.loop.time()
        waiting = self.held or self.paused
        reason: str | None = None
        if self._deadline_at is not None and now >= self._deadline_at:
            reason = "deadline"
        elif (
            self._idle is not None
            and self._phase == _BODY
            and not waiting
            and now >= self.last_event + self._idle
        ):
            reason = "idle"
        elif (
            self._read_timeout is not None
            and not waiting
            and now >= self.last_byte + self._read_timeout
        ):
            reason = "read"
        if reason is None:
            self._arm()
            return
        if self._phase == _BODY and self._sse and self._decoder.done:
            self._succeed()
            return
        if reason == "read":
            self._transport_error(httpx.ReadTimeout("timed out"))
            return
        if self._phase == _BODY and self._sse:
            timed_out = _timed_out(self._decoder, self._request, reason, self._plan)
        else:
            decoder = ChatEventDecoder()
            timed_out = _timed_out(decoder, self._request, reason, self._plan)
        assert timed_out is not None
        self._fail(timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped, or raw deflate from some servers."""

    def __init__(self) -> None:
        self._inner: Any = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return bytes(self._inner.decompress(data))
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return bytes(self._inner.decompress(data))

    def flush(self) -> bytes:
        return bytes(self._inner.flush())


async def iterate(stream: NativeStream) -> AsyncGenerator[ChatEvent, None]:
    """The events of ``stream`` for ``async for``, with flow control.

    The stream runs as one task delivering into a buffer; above :data:`HIGH_WATER` unread
    events the socket stops being read until the buffer drains to :data:`LOW_WATER`.
    Closing the generator cancels the task, which aborts the connection.
    """
    loop = asyncio.get_running_loop()
    items: collections.deque[ChatEvent] = collections.deque()
    waiter: asyncio.Future[None] | None = None

    def wake(_: object = None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(event: ChatEvent) -> None:
        items.append(event)
        if len(items) >= HIGH_WATER:
            stream.pause()
        elif len(items) == 1:
            wake()

    task = loop.create_task(stream.run(deliver), name="streamkit-native-stream")
    task.add_done_callback(wake)
    try:
        while True:
            if items:
                event = items.popleft()
                if len(items) <= LOW_WATER:
                    stream.resume()
                stream.hold()
                yield event
                continue
            if task.done():
                task.result()  # the stream's error, after every event before it
                return
            stream.touch()
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
