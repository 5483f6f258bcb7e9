"""A scripted HTTP/1.1 server on 127.0.0.1 for transport and fault tests.

Each response is a script of steps: send the headers, send a chunk, wait for a signal,
pause, close mid-body (FIN with no chunked terminator), reset (RST), finish properly, or
stall until the client goes away. The server records every request, counts accepted
connections, and signals when a client disconnects, so tests wait on events rather than
sleeping.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Headers:
    status: int = 200
    content_type: str | None = "text/event-stream"
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    data: bytes


@dataclass(frozen=True)
class Wait:
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


Step = Headers | Chunk | Wait | Sleep | Close | Reset | Finish | Stall


def sse_events(events: Iterable[dict[str, Any]], *, done: bool = True) -> list[Step]:
    """One chunk per event, Cohere framing, then ``[DONE]`` if asked."""
    steps: list[Step] = [
        Chunk(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()) for e in events
    ]
    if done:
        steps.append(Chunk(b"data: [DONE]\n\n"))
    return steps


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
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Served:
    request: RecordedRequest
    disconnected: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


class ScriptedServer:
    """Serves queued scripts in order, one per request; records everything."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._scripts: deque[list[Step]] = deque()
        self._lock = threading.Lock()
        self.served: list[_Served] = []
        self.accepts = 0
        self._request_seen = threading.Condition(self._lock)
        self._stopping = False
        self._connections: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ test API

    def enqueue(self, *scripts: list[Step]) -> None:
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

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

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
                    script = self._scripts.popleft() if self._scripts else None
                    self._request_seen.notify_all()
                if script is None:
                    script = json_response(404, {"message": "no script queued"})
                keep_going = self._run(conn, reader, script, served)
                if not keep_going:
                    return
        finally:
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

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
                elif isinstance(step, Wait):
                    while not step.event.wait(0.05):
                        if self._stopping:
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
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RecordedRequest(method, path, headers, body)

    def wait_for_disconnect(self, served: _Served) -> None:
        while self._recv():
            pass
        served.disconnected.set()
