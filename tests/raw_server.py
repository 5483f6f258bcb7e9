"""A raw HTTP/1.1 server on 127.0.0.1 that answers with exact bytes, for framing tests.

Unlike :mod:`tests.scripted_server`, nothing here writes HTTP for the test: a
:class:`Reply` is the response's bytes as they go on the wire (status line, headers and
body framing included), optionally in segments with a pause between them (so that one
response is split across several reads of the client), followed by what the connection
does next: close (FIN), reset (RST), hold (send nothing more until the client goes away),
or keep (read the next request on the same connection).

One server can hold many replies, each under a route: ``route("case-id", reply)`` returns
a base URL whose requests (``/case-id/v2/chat``) get that reply, so one server serves a
whole parametrised test or a Hypothesis run. The server records every request (its target,
raw header lines and body), counts accepted connections and the bytes it received, and
:meth:`RawServer.settle` gives a point after which every connection a client opened before
it has been accepted, so a test can assert that a client never connected without sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tests.scripted_server import hang_up

__all__ = ["RawRequest", "RawServer", "Reply", "Then"]

Then = Literal["close", "hold", "reset", "keep"]
"""What a connection does after a reply."""


@dataclass(frozen=True)
class Reply:
    """One response, byte for byte, and what the connection does after it.

    Attributes:
        segments: The bytes to send, in order; each is one ``sendall``.
        then: ``"close"``: FIN (the server then reads until the client closes);
            ``"reset"``: RST; ``"hold"``: send nothing more until the client closes;
            ``"keep"``: read the next request on this connection.
        gap: Seconds to pause between segments, so that the client reads them separately.
    """

    segments: tuple[bytes, ...] = ()
    then: Then = "close"
    gap: float = 0.0

    @property
    def data(self) -> bytes:
        return b"".join(self.segments)


@dataclass(frozen=True)
class RawRequest:
    """A request as the server read it."""

    method: str
    target: str
    """The request target as sent: ``/route/v2/chat``, or absolute-form through a proxy."""
    head: bytes
    """The request line and header lines, exactly as received (without the blank line)."""
    body: bytes
    connection: int
    """Which accepted connection (1, 2, ...) carried it."""

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path if "://" in self.target else self.target


@dataclass
class _Route:
    replies: tuple[Reply, ...]
    requests: list[RawRequest] = field(default_factory=list)


class RawServer:
    """Serves :class:`Reply` objects by route; records requests and connections.

    Args:
        replies: The replies for requests that match no route, in order: the first such
            request gets ``replies[0]``, the next ``replies[1]``, and so on; the last one
            again once they run out (a 404 when there are none).
    """

    def __init__(self, *replies: Reply) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._default = _Route(replies)
        self._routes: dict[str, _Route] = {}
        self._changed = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._expected_probes: set[int] = set()
        self._probes: set[int] = set()
        self._stopping = False
        self.accepts = 0
        """Connections accepted, the :meth:`settle` probes not counted."""
        self.bytes_received = 0
        """Bytes received on every connection, the probes not counted."""
        self.requests: list[RawRequest] = []
        """Every request read, in arrival order, whatever its route."""
        self.closes = 0
        """Connections the server has closed (FIN or RST) after a reply."""
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ test API

    def route(self, name: str, *replies: Reply) -> str:
        """Serve ``replies`` (in order, as for the default route) to requests under ``/name/``.

        Returns:
            The base URL to give a client.
        """
        assert "/" not in name and name not in self._routes, name
        with self._changed:
            self._routes[name] = _Route(replies)
        return self.url(name)

    def url(self, name: str) -> str:
        """The base URL of the route ``name``."""
        return f"{self.base_url}/{urllib.parse.quote(name)}"

    @property
    def routes(self) -> frozenset[str]:
        with self._changed:
            return frozenset(self._routes)

    def disconnect_all(self) -> None:
        """Shut down every open connection now (to end a client that hangs on one)."""
        with self._changed:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever the server's state changes."""
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), "the server did not get there"

    def settle(self, timeout: float = 10.0) -> None:
        """Return once every connection opened before this call has been accepted.

        It opens a probe connection of its own and waits for the server to accept it: the
        listen queue is first in, first out, so any connection a client opened earlier was
        accepted (and counted in :attr:`accepts`) before it.
        """
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            with self._changed:
                self._expected_probes.add(port)
            probe.settimeout(timeout)
            probe.connect(("127.0.0.1", self.port))
            self.wait_for(lambda: port in self._probes, timeout)
        finally:
            probe.close()

    def close(self) -> None:
        self._stopping = True
        hang_up(self._listener)
        self._thread.join(5)
        with self._changed:
            connections = list(self._connections)
        for conn in connections:
            hang_up(conn)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return
            with self._changed:
                if peer[1] in self._expected_probes:
                    self._probes.add(peer[1])
                    self._changed.notify_all()
                    conn.close()
                    continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._changed:
                self.accepts += 1
                number = self.accepts
                self._connections.add(conn)
                self._changed.notify_all()
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        reader = _Reader(conn, self)
        try:
            while not self._stopping:
                request = reader.read_request(number)
                if request is None:
                    return
                with self._changed:
                    self.requests.append(request)
                    route = self._route_for(request)
                    route.requests.append(request)
                    count = len(route.requests)
                    self._changed.notify_all()
                reply = route.replies[min(count, len(route.replies)) - 1] if route.replies else None
                if reply is None:
                    reply = Reply((b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",))
                if not self._send(conn, reader, reply):
                    return
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._changed:
                self._connections.discard(conn)
                self._changed.notify_all()

    def _closed(self) -> None:
        with self._changed:
            self.closes += 1
            self._changed.notify_all()

    def _route_for(self, request: RawRequest) -> _Route:
        name = urllib.parse.unquote(request.path.split("/")[1]) if request.path.count("/") else ""
        return self._routes.get(name, self._default)

    def _send(self, conn: socket.socket, reader: _Reader, reply: Reply) -> bool:
        """Send one reply; True to read another request on this connection."""
        try:
            for i, segment in enumerate(reply.segments):
                if i and reply.gap:
                    time.sleep(reply.gap)  # nothing to wait on: the client's reads are its own
                conn.sendall(segment)
            if reply.then == "keep":
                return True
            if reply.then == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                self._closed()
                return False
            if reply.then == "close":
                conn.shutdown(socket.SHUT_WR)
                self._closed()
            reader.drain()  # "close" and "hold": until the client goes away
        except OSError:
            pass
        return False


class _Reader:
    """Reads HTTP/1.1 requests (head and Content-Length body) off one connection."""

    def __init__(self, conn: socket.socket, server: RawServer) -> None:
        self._conn = conn
        self._server = server
        self._buffer = b""

    def _recv(self) -> bytes:
        try:
            data = self._conn.recv(65536)
        except OSError:
            return b""
        if data:
            with self._server._changed:
                self._server.bytes_received += len(data)
                self._server._changed.notify_all()
        return data

    def read_request(self, connection: int) -> RawRequest | None:
        while b"\r\n\r\n" not in self._buffer:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        method, target, _ = (lines[0].decode("latin-1").split(" ", 2) + ["", ""])[:3]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or b"0")
        while len(self._buffer) < length:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RawRequest(method, target, head, body, connection)

    def drain(self) -> None:
        while self._recv():
            pass
