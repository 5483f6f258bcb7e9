"""The built-in offline backend: a Cohere-compatible ``POST /v2/chat`` server on loopback.

It answers from `streamkit._replies.script_reply`, streamed or not, in the real wire format
(docs ``cohere-v2-stream.md``). The test suite uses it as its fixture and the CLI falls back to
it when no ``CO_API_KEY`` is set, so it needs nothing beyond streamkit's own dependencies, starts
in milliseconds, keeps quiet on stderr and survives clients that hang up mid-stream.

HTTP/1.1 is h11's job, both ways, as in httpx: it parses each request (head, Content-Length or
chunked body, keep-alive) and frames each response; this module only moves bytes between h11 and
a socket, one thread per connection, and decides the replies in `_answer`, without I/O.

Example:
    >>> import httpx
    >>> with OfflineServer() as server:
    ...     reply = httpx.post(
    ...         server.base_url + "/v2/chat",
    ...         headers={"Authorization": "Bearer offline"},
    ...         json={"model": "command-a", "messages": [{"role": "user", "content": "Hi"}]},
    ...     )
    >>> reply.json()["finish_reason"]
    'COMPLETE'
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import h11

from streamkit._replies import script_reply
from streamkit.errors import OfflineRequestError, ServerNotRunningError

__all__ = ["OfflineServer", "RecordedRequest"]


_CHAT_PATH = "/v2/chat"
_MAX_BODY_BYTES = 16 * 1024 * 1024
# A request head still incomplete past this gets 431 from h11 (http.server allowed 64 KiB a line).
_MAX_HEAD_BYTES = 64 * 1024
_RECEIVE_BYTES = 64 * 1024
_IDLE_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 5.0
_LINGER_SECONDS = 1.0  # how long a closing connection drops what the client still sends


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, recorded before it was answered."""

    method: str
    """The HTTP method, e.g. ``"POST"``."""
    path: str
    """The request target as sent, query string included."""
    headers: dict[str, str]
    """The request headers, names in lower case."""
    body: Any
    """The parsed JSON body, or None when the body was empty or not JSON."""
    sent_events: list[str] = field(default_factory=list)
    """The ``type`` of each SSE event written and flushed so far, then ``"[DONE]"``.

    The server appends to it while it streams, so it shows how far a stream got: a stream cut
    short by the client has no ``"[DONE]"``.
    """


class OfflineServer:
    """A Cohere-compatible chat server on loopback, answering from scripted replies.

    ``start()`` binds and serves in a daemon thread; ``stop()`` closes every connection and waits
    for the handlers to finish. Use it as a context manager::

        with OfflineServer() as server:
            client = cohere.ClientV2(api_key="offline", base_url=server.base_url)

    Requests need ``Authorization: Bearer <any non-empty token>``; see `script_reply` for which
    reply each request body gets.

    Args:
        host: The address to bind.
        port: The port to bind; 0 picks a free one.
        pacing: Seconds to wait between streamed events: 0 for tests, ~0.03 to watch a reply
            being typed. May be changed while the server runs.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, pacing: float = 0.0) -> None:
        if pacing < 0:
            raise ValueError(f"pacing must be >= 0 seconds, got {pacing!r}")
        self.pacing = pacing
        """Seconds to wait between streamed events."""
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._httpd: _TCPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OfflineServer:
        """Bind and start serving in a daemon thread (does nothing if already running).

        Returns:
            The server itself, so ``server = OfflineServer().start()`` works.
        """
        with self._lock:
            if self._httpd is not None:
                return self
            httpd = _TCPServer(self._address, self)
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"streamkit-offline-{httpd.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving: close every open connection, cut streams short and join the threads.

        Safe to call more than once; the server can be started again afterwards (on a new port
        if it was bound to port 0).
        """
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join()

    def __enter__(self) -> OfflineServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def base_url(self) -> str:
        """The root URL, no trailing slash: clients POST to ``base_url + "/v2/chat"``.

        Raises:
            ServerNotRunningError: The server is not running (call `start` first).
        """
        httpd = self._httpd
        if httpd is None:
            raise ServerNotRunningError(
                "the OfflineServer is not running: call start() or use `with`"
            )
        host, port = httpd.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first (thread-safe)."""
        with self._lock:
            return list(self._requests)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


class _TCPServer(socketserver.TCPServer):
    """Accepts connections, one daemon thread each, all tracked so that `stop` can end them."""

    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: OfflineServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._connections_lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Connection)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"streamkit-offline-{self.server_address[1]}-connection",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up is business as usual, not worth a traceback; anything else is
        # a bug in this module and should be seen.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections.items())
        for _, connection in connections:
            try:
                # Wakes a handler blocked reading the next request of a keep-alive connection.
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread, _ in connections:
            thread.join(_STOP_TIMEOUT_SECONDS)


class _Connection(socketserver.BaseRequestHandler):
    """One client connection, driven by h11.

    h11 reads every request and writes every response; this class only moves bytes between h11
    and the socket, and `_answer` decides what to reply. Requests are answered in turn while h11
    keeps the connection alive (RFC 9112 §9.3), until the client closes it, a response has to
    close it, or the server stops.
    """

    request: socket.socket
    server: _TCPServer

    def setup(self) -> None:
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
        # The method of the request being answered (none yet): a response to HEAD has no body.
        self.method = b""
        self.request.settimeout(_IDLE_TIMEOUT_SECONDS)
        # Each SSE event must leave as soon as it is written, not wait for Nagle's algorithm.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        try:
            while self._exchange():
                self.h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            # Malformed framing: h11 says which status fits (400, 431 for a huge head, 501
            # for a transfer coding other than chunked). Its message may quote the request's
            # bytes, the token among them, so the reply names only the status.
            status = exc.error_status_hint
            self._refuse(status, f"invalid request: {HTTPStatus(status).phrase.lower()}")
        except (ConnectionError, TimeoutError):
            # The client hung up (or went silent) mid-request or mid-stream.
            pass

    def finish(self) -> None:
        # Closing a socket with request bytes still unread makes the kernel send a reset, which
        # can destroy a refusal before the client reads it (RFC 9112 §9.6): stop writing, then
        # read and drop what the client still sends, for a moment.
        if self.server.stopping.is_set() or self.h11.their_state is h11.CLOSED:
            return
        try:
            self.request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                self.request.settimeout(left)
                if not self.request.recv(_RECEIVE_BYTES):
                    return
        except OSError:
            pass

    def _exchange(self) -> bool:
        """Read one request and answer it; True if the connection can carry another."""
        self.method = b""
        request = self._next_event()
        if not isinstance(request, h11.Request):
            return False  # ConnectionClosed: the client is done with this connection.
        self.method = request.method
        raw = self._read_body(request)
        if raw is None:
            return False
        body, parsed = _parse_json(raw)
        record = RecordedRequest(
            method=request.method.decode("ascii"),
            # ISO-8859-1, as http.server decoded them: every byte h11 accepts maps to a character.
            path=request.target.decode("latin-1"),
            headers={
                name.decode("ascii"): value.decode("latin-1") for name, value in request.headers
            },
            body=body,
        )
        self.server.owner._record(record)
        request_id = uuid.uuid4()
        reply = _answer(record, parsed, request_id)
        if isinstance(reply, _StreamReply):
            self._stream(request_id, reply.events, record)
        else:
            self._send_json(request_id, reply)
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    def _read_body(self, request: h11.Request) -> bytes | None:
        """The whole request body, or None when it was refused as too large (413)."""
        if _declared_length(request) > _MAX_BODY_BYTES:
            # Refused before it is sent, which also answers an `Expect: 100-continue`.
            self._refuse(413, "invalid request: the body is too large")
            return None
        if self.h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[], reason="Continue"))
        chunks: list[bytes] = []
        size = 0
        # h11 hands the body over as Data events (chunk sizes and trailers are its business),
        # then EndOfMessage.
        while isinstance(event := self._next_event(), h11.Data):
            size += len(event.data)
            if size > _MAX_BODY_BYTES:
                self._refuse(413, "invalid request: the body is too large")
                return None
            chunks.append(event.data)
        return b"".join(chunks)

    def _next_event(self) -> h11.Event:
        while not isinstance(event := self.h11.next_event(), h11.Event):
            # Never PAUSED: a request is read only once the previous cycle is over.
            assert event is h11.NEED_DATA, event
            # An empty read is the client's end of stream, which h11 must hear about too.
            self.h11.receive_data(self.request.recv(_RECEIVE_BYTES))
        return event

    def _refuse(self, status: int, message: str) -> None:
        """Answer with an error when the request cannot be read, and close the connection."""
        if self.server.stopping.is_set() or self.h11.our_state not in {h11.IDLE, h11.SEND_RESPONSE}:
            return
        request_id = uuid.uuid4()
        self._send_json(request_id, _error(request_id, status, message), close=True)

    def _send_json(self, request_id: uuid.UUID, reply: _JsonReply, *, close: bool = False) -> None:
        data = _dump(reply.payload)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("x-request-id", request_id.hex),
            *reply.headers,
        ]
        if close:
            headers.append(("Connection", "close"))
        self._send(_response(reply.status, headers))
        if self.method != b"HEAD":
            self._send(h11.Data(data=data))
        self._send(h11.EndOfMessage())

    def _stream(
        self, request_id: uuid.UUID, events: list[dict[str, Any]], record: RecordedRequest
    ) -> None:
        # No framing header of our own: h11 sends the body chunked to an HTTP/1.1 client and
        # ends it by closing the connection for an HTTP/1.0 one (RFC 9112 §6.3, §7).
        headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("x-request-id", request_id.hex),
        ]
        self._send(_response(200, headers))
        stopping = self.server.stopping
        for position, event in enumerate(events):
            pacing = self.server.owner.pacing
            if (position and pacing > 0 and stopping.wait(pacing)) or stopping.is_set():
                # The server is stopping: end the stream as a dropped connection would.
                return
            # Framing (§1): `event: <type>`, `data: <one-line JSON>`, blank line. One Data
            # event is one chunk, handed to the socket at once.
            data = b"event: %s\ndata: %s\n\n" % (event["type"].encode(), _dump(event))
            self._send(h11.Data(data=data))
            record.sent_events.append(event["type"])
        self._send(h11.Data(data=b"data: [DONE]\n\n"))
        self._send(h11.EndOfMessage())
        record.sent_events.append("[DONE]")

    def _send(
        self, event: h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage
    ) -> None:
        self.request.sendall(self.h11.send(event))


@dataclass(frozen=True)
class _JsonReply:
    """A response with a whole JSON body."""

    status: int
    payload: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _StreamReply:
    """A 200 whose body is these events, streamed as SSE."""

    events: list[dict[str, Any]]


def _answer(
    request: RecordedRequest, parsed: bool, request_id: uuid.UUID
) -> _JsonReply | _StreamReply:
    """Decide the reply to a request read in full (no I/O: the connection sends it)."""
    path = urlsplit(request.path).path
    if path.rstrip("/") != _CHAT_PATH:
        return _error(request_id, 404, f"no route for {request.method} {request.path}")
    if request.method != "POST":
        message = f"{request.method} is not allowed on {_CHAT_PATH}: use POST"
        return _error(request_id, 405, message, [("Allow", "POST")])
    if not _has_token(request.headers.get("authorization")):
        message = "no api key supplied: send an 'Authorization: Bearer <token>' header"
        return _error(request_id, 401, message)
    body = request.body
    if not parsed:
        return _error(request_id, 400, "invalid request: the body must be valid JSON")
    if not isinstance(body, dict):
        return _error(request_id, 400, "invalid request: the body must be a JSON object")
    try:
        reply = script_reply(body)
        if body.get("stream") is True:
            return _StreamReply(reply.stream_events())
        return _JsonReply(200, reply.response())
    except OfflineRequestError as exc:
        # Cohere answers a body with missing or invalid values with 400 (docs: "Errors").
        return _error(request_id, 400, f"invalid request: {exc}")
    except Exception as exc:
        # A bug in the scripts: say so in the reply rather than drop the connection.
        return _error(request_id, 500, f"the offline backend failed: {exc!r}")


def _error(
    request_id: uuid.UUID, status: int, message: str, headers: Iterable[tuple[str, str]] = ()
) -> _JsonReply:
    # Cohere's error body: an id and a human-readable message (never the token).
    return _JsonReply(status, {"id": str(request_id), "message": message}, tuple(headers))


def _response(status: int, headers: list[tuple[str, str]]) -> h11.Response:
    return h11.Response(
        status_code=status,
        reason=HTTPStatus(status).phrase,
        headers=[("Server", "streamkit-offline"), ("Date", formatdate(usegmt=True)), *headers],
    )


def _declared_length(request: h11.Request) -> int:
    """The body's length as its Content-Length declares it; 0 when the body is chunked or absent.

    h11 frames the body by this value and has checked it (one value, 1 to 20 digits); it is read
    here only so that a body too large is refused before it is sent (RFC 9110 §15.5.14).
    """
    if any(name == b"transfer-encoding" for name, _ in request.headers):
        return 0  # Chunked framing wins over a Content-Length (RFC 9112 §6.3).
    return next((int(value) for name, value in request.headers if name == b"content-length"), 0)


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    """The body as JSON and True, or None and False when it is empty or not JSON."""
    if raw.strip():
        try:
            return json.loads(raw), True
        except (ValueError, RecursionError):
            pass
    return None, False


def _has_token(authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and token.strip() != ""


def _dump(payload: Mapping[str, Any]) -> bytes:
    """Compact one-line JSON with raw UTF-8, as Cohere sends it."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        # Lone surrogates from the request cannot be UTF-8: escape them instead.
        return json.dumps(payload, separators=(",", ":")).encode()
