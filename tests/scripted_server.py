"""A scripted HTTP/1.1 server on 127.0.0.1 for transport and fault tests.

Each response is a script of steps: send the headers, send a chunk, push many chunks,
wait for a signal, pause, close mid-body (FIN with no chunked terminator), reset (RST),
finish properly, or stall until the client goes away. A script is queued as a list of
steps, or as a function of the request (to answer each request by what it asked). The
server records every request (with its raw headers and arrival time), counts accepted
connections and the bytes sent, and signals when a client disconnects, so tests wait on
events rather than sleeping.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


def hang_up(sock: socket.socket) -> None:
    """Shut a socket down (waking any thread blocked on it) and close it, whatever its state."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(frozen=True)
class Headers:
    status: int = 200
    content_type: str | None = "text/event-stream"
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    data: bytes


@dataclass(frozen=True)
class Raw:
    """Bytes sent as they are, outside chunked framing (e.g. half a chunk before Close)."""

    data: bytes


@dataclass(frozen=True)
class Push:
    """``count`` chunks of ``data``, each sent as it fits in the socket (TCP backpressure)."""

    data: bytes
    count: int


@dataclass(frozen=True)
class Wait:
    """Send nothing until ``event`` is set; ends the response if the client hangs up first."""

    event: threading.Event


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Close:
    """FIN without the chunked terminator: an interrupted body."""


@dataclass(frozen=True)
class Reset:
    """RST: SO_LINGER 0, then close."""


@dataclass(frozen=True)
class Finish:
    """The chunked terminator: a properly ended body."""


@dataclass(frozen=True)
class Stall:
    """Send nothing more until the client disconnects."""


Step = Headers | Chunk | Raw | Push | Wait | Sleep | Close | Reset | Finish | Stall


def sse_events(events: Iterable[dict[str, Any]], *, done: bool = True) -> list[Step]:
    """One chunk per event, Cohere framing, then ``[DONE]`` if asked."""
    steps: list[Step] = [
        Chunk(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()) for e in events
    ]
    if done:
        steps.append(Chunk(b"data: [DONE]\n\n"))
    return steps


def gzip_chunks(pieces: Iterable[bytes]) -> list[Step]:
    """Gzip the pieces as one body, each piece its own sync-flushed block in its own chunk.

    A client that decodes as it reads can deliver each piece as soon as its chunk arrives.
    Send them after ``Headers(..., extra=(("Content-Encoding", "gzip"),))``.
    """
    compressor = zlib.compressobj(wbits=31)  # 16 + 15: a gzip header and trailer
    steps: list[Step] = [
        Chunk(compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)) for piece in pieces
    ]
    steps.append(Chunk(compressor.flush(zlib.Z_FINISH)))
    return steps


def redirect(location: str, status: int = 307) -> list[Step]:
    """A redirect with an empty body."""
    return [Headers(status, None, (("Location", location),)), Finish()]


def json_response(status: int, body: object, *extra: tuple[str, str]) -> list[Step]:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return [
        Headers(status, "application/json", extra),
        Chunk(raw),
        Finish(),
    ]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names; the last value wins when a name repeats (see ``raw_headers``)."""
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    """Every header line as sent, names in their original case."""
    received_at: float = 0.0
    """``time.monotonic()`` when the request was read."""

    def json(self) -> Any:
        return json.loads(self.body)


Script = list[Step] | Callable[[RecordedRequest], list[Step]]
"""The steps of one response, or a function that picks them from the request."""


@dataclass
class _Served:
    request: RecordedRequest
    disconnected: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    bytes_sent: int = 0
    """Body bytes sent so far (chunk framing excluded); read it from any thread."""


class ScriptedServer:
    """Serves queued scripts in order, one per request; records everything.

    Args:
        default: The script for a request that finds the queue empty (a 404 otherwise).
    """

    def __init__(self, default: Script | None = None) -> None:
        self._default = default
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self.served: list[_Served] = []
        self.accepts = 0
        self._request_seen = threading.Condition(self._lock)
        self._stopping = False
        self._connections: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ test API

    def enqueue(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [s.request for s in self.served]

    def wait_for_request(self, n: int = 1, timeout: float = 10.0) -> _Served:
        """Wait until at least ``n`` requests arrived; return the n-th."""
        with self._request_seen:
            ok = self._request_seen.wait_for(lambda: len(self.served) >= n, timeout)
            assert ok, f"the server saw {len(self.served)} requests, expected {n}"
            return self.served[n - 1]

    @property
    def open_connections(self) -> int:
        """Connections whose serving thread has not finished yet."""
        with self._lock:
            return len(self._connections)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every connection the server accepted is closed (a client disconnect)."""
        with self._request_seen:
            ok = self._request_seen.wait_for(lambda: not self._connections, timeout)
            assert ok, f"{len(self._connections)} connections are still open"

    def close(self) -> None:
        self._stopping = True
        # shutdown() wakes the accept() blocked in the accept thread (close() alone does not,
        # and the thread would live on), then the thread ends.
        hang_up(self._listener)
        if self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            hang_up(conn)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepts += 1
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        try:
            while not self._stopping:
                request = reader.read_request()
                if request is None:
                    return
                served = _Served(request)
                with self._request_seen:
                    self.served.append(served)
                    script = self._scripts.popleft() if self._scripts else self._default
                    self._request_seen.notify_all()
                if script is None:
                    script = json_response(404, {"message": "no script queued"})
                steps = script(request) if callable(script) else script
                keep_going = self._run(conn, reader, steps, served)
                if not keep_going:
                    return
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._request_seen:
                self._connections.discard(conn)
                self._request_seen.notify_all()

    def _run(
        self, conn: socket.socket, reader: _Reader, script: list[Step], served: _Served
    ) -> bool:
        try:
            for step in script:
                if isinstance(step, Headers):
                    lines = [f"HTTP/1.1 {step.status} Scripted"]
                    if step.content_type is not None:
                        lines.append(f"Content-Type: {step.content_type}")
                    lines.append("Transfer-Encoding: chunked")
                    lines.extend(f"{k}: {v}" for k, v in step.extra)
                    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                elif isinstance(step, Chunk):
                    if step.data:
                        conn.sendall(b"%x\r\n%s\r\n" % (len(step.data), step.data))
                        served.bytes_sent += len(step.data)
                elif isinstance(step, Raw):
                    conn.sendall(step.data)
                elif isinstance(step, Push):
                    frame = b"%x\r\n%s\r\n" % (len(step.data), step.data)
                    for _ in range(step.count):
                        conn.sendall(frame)  # blocks while the client's buffers are full
                        served.bytes_sent += len(step.data)
                elif isinstance(step, Wait):
                    while not step.event.wait(0.02):
                        if self._stopping:
                            return False
                        if reader.peer_closed():  # the client hung up while we waited
                            served.disconnected.set()
                            return False
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                elif isinstance(step, Close):
                    conn.shutdown(socket.SHUT_WR)
                    reader.wait_for_disconnect(served)
                    return False
                elif isinstance(step, Reset):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    served.disconnected.set()
                    return False
                elif isinstance(step, Finish):
                    conn.sendall(b"0\r\n\r\n")
                    served.finished.set()
                    return True
                elif isinstance(step, Stall):
                    reader.wait_for_disconnect(served)
                    return False
            # A script without an ending step: behave like Finish.
            conn.sendall(b"0\r\n\r\n")
            served.finished.set()
            return True
        except OSError:
            served.disconnected.set()
            return False


class _Reader:
    """Reads HTTP/1.1 requests from a connection and notices disconnects."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = b""

    def _recv(self) -> bytes:
        try:
            return self._conn.recv(65536)
        except OSError:
            return b""

    def read_request(self) -> RecordedRequest | None:
        while b"\r\n\r\n" not in self._buffer:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        received_at = time.monotonic()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        raw_headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            raw_headers.append((name.strip(), value.strip()))
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RecordedRequest(method, path, headers, body, raw_headers, received_at)

    def peer_closed(self) -> bool:
        """True if the client has closed or reset its end (checked without blocking)."""
        readable, _, _ = select.select([self._conn], [], [], 0)
        if not readable:
            return False
        try:
            return self._conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def wait_for_disconnect(self, served: _Served) -> None:
        while self._recv():
            pass
        served.disconnected.set()
