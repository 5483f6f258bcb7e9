"""The built-in offline backend: a Cohere-compatible ``POST /v2/chat`` server on loopback.

It answers from `streamkit._replies.script_reply`, streamed or not, in the real wire format
(docs ``cohere-v2-stream.md``). The test suite uses it as its fixture and the CLI falls back to
it when no ``CO_API_KEY`` is set, so it is standard library only, starts in milliseconds, keeps
quiet on stderr and survives clients that hang up mid-stream.

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
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from streamkit._replies import script_reply
from streamkit.errors import OfflineRequestError, ServerNotRunningError

__all__ = ["OfflineServer", "RecordedRequest"]


_CHAT_PATH = "/v2/chat"
_MAX_BODY_BYTES = 16 * 1024 * 1024
_IDLE_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 5.0


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
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OfflineServer:
        """Bind and start serving in a daemon thread (does nothing if already running).

        Returns:
            The server itself, so ``server = OfflineServer().start()`` works.
        """
        with self._lock:
            if self._httpd is not None:
                return self
            httpd = _HTTPServer(self._address, self)
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


class _HTTPServer(HTTPServer):
    """One daemon thread per connection, all tracked so that `stop` can end them."""

    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: OfflineServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._connections_lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can take seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"streamkit-offline-{self.server_port}-connection",
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "streamkit-offline"
    sys_version = ""
    # Each SSE event must leave as soon as it is written (TCP_NODELAY).
    disable_nagle_algorithm = True
    timeout = _IDLE_TIMEOUT_SECONDS
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 (fixed signature)
        """Keep quiet: the CLI shares the terminal and tests read stderr."""

    def do_POST(self) -> None:
        """Answer a request (every method lands here; only POST /v2/chat gets a reply)."""
        request_id = uuid.uuid4()
        try:
            self._answer(request_id)
        except (ConnectionError, TimeoutError):
            # The client hung up (or went silent) mid-request or mid-stream.
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _answer(self, request_id: uuid.UUID) -> None:
        raw = self._read_body(request_id)
        if raw is None:
            return
        body: Any = None
        parsed = False
        if raw.strip():
            try:
                body, parsed = json.loads(raw), True
            except (ValueError, RecursionError):
                pass
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        self.server.owner._record(record)

        if urlsplit(self.path).path.rstrip("/") != _CHAT_PATH:
            self._send_error(request_id, 404, f"no route for {self.command} {self.path}")
            return
        if self.command != "POST":
            message = f"{self.command} is not allowed on {_CHAT_PATH}: use POST"
            self._send_error(request_id, 405, message, [("Allow", "POST")])
            return
        if not _has_token(self.headers.get("Authorization")):
            message = "no api key supplied: send an 'Authorization: Bearer <token>' header"
            self._send_error(request_id, 401, message)
            return
        if not parsed:
            self._send_error(request_id, 400, "invalid request: the body must be valid JSON")
            return
        if not isinstance(body, dict):
            self._send_error(request_id, 400, "invalid request: the body must be a JSON object")
            return
        streamed = body.get("stream") is True
        try:
            reply = script_reply(body)
            events = reply.stream_events() if streamed else []
            response = {} if streamed else reply.response()
        except OfflineRequestError as exc:
            # Cohere answers a body with missing or invalid values with 400 (docs: "Errors").
            self._send_error(request_id, 400, f"invalid request: {exc}")
            return
        except Exception as exc:
            # A bug in the scripts: say so in the reply rather than drop the connection.
            self._send_error(request_id, 500, f"the offline backend failed: {exc!r}")
            return
        if streamed:
            self._stream(request_id, events, record)
        else:
            self._send_json(request_id, 200, response)

    def _read_body(self, request_id: uuid.UUID) -> bytes | None:
        """Read the whole request body, so the connection stays in step for the next request."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(request_id)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY_BYTES:
            self.close_connection = True
            status = 400 if length < 0 else 413
            self._send_error(request_id, status, "invalid request: bad or too large Content-Length")
            return None
        return self.rfile.read(length)

    def _read_chunked(self, request_id: uuid.UUID) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                chunk_size = -1
            size += chunk_size
            if chunk_size < 0 or size > _MAX_BODY_BYTES:
                self.close_connection = True
                self._send_error(request_id, 400, "invalid request: bad chunked body")
                return None
            if chunk_size == 0:
                # Skip trailers up to the blank line that ends the body.
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(1024)

    def _send_error(
        self,
        request_id: uuid.UUID,
        status: int,
        message: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        # Cohere's error body: an id and a human-readable message (never the token).
        self._send_json(request_id, status, {"id": str(request_id), "message": message}, headers)

    def _send_json(
        self,
        request_id: uuid.UUID,
        status: int,
        payload: Mapping[str, Any],
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        data = _dump(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", request_id.hex)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _stream(
        self, request_id: uuid.UUID, events: list[dict[str, Any]], record: RecordedRequest
    ) -> None:
        # HTTP/1.0 has no chunked encoding: the body then ends when the connection closes.
        chunked = self.request_version != "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", request_id.hex)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()

        stopping = self.server.stopping
        for position, event in enumerate(events):
            pacing = self.server.owner.pacing
            if (position and pacing > 0 and stopping.wait(pacing)) or stopping.is_set():
                # The server is stopping: end the stream as a dropped connection would.
                self.close_connection = True
                return
            # Framing (§1): `event: <type>`, `data: <one-line JSON>`, blank line; one chunk each.
            self._write(
                b"event: %s\ndata: %s\n\n" % (event["type"].encode(), _dump(event)), chunked
            )
            record.sent_events.append(event["type"])
        self._write(b"data: [DONE]\n\n", chunked)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        record.sent_events.append("[DONE]")

    def _write(self, data: bytes, chunked: bool) -> None:
        # The handler's wfile is unbuffered: each write is sent at once.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)


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
