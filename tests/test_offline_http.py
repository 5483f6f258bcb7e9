"""The offline backend's HTTP/1.1 over a raw socket: bodies, limits, keep-alive, bad framing.

Requests are serialised by an h11 client (malformed ones are written by hand) and sent over a
plain socket in whatever writes a test chooses; responses are read by an h11 client too, so a test
sees what the server framed and nothing here parses HTTP itself.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import h11
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamkit import OfflineServer
from streamkit._replies import script_reply

JSON = dict[str, Any]
BODY: JSON = {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Hi"}]}
LIMIT = 16 * 1024 * 1024  # the server's limit on a request body


@pytest.fixture
def server() -> Iterator[OfflineServer]:
    # One server per test: each test can then wait for every connection handler to finish.
    with OfflineServer() as running:
        yield running


@pytest.fixture(scope="module")
def shared_server() -> Iterator[OfflineServer]:
    with OfflineServer() as running:
        yield running


@pytest.fixture
def sock(server: OfflineServer) -> Iterator[socket.socket]:
    with connect(server) as connection:
        yield connection


def connect(server: OfflineServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=10)
    # Every write leaves as its own segment: tiny writes stay tiny on the wire.
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def request(
    body: JSON | None = None, *, method: str = "POST", extra: list[tuple[str, str]] | None = None
) -> h11.Request:
    headers = [("Host", "offline"), ("Authorization", "Bearer t"), *(extra or [])]
    if body is not None:
        headers += [("Content-Type", "application/json")]
        if not any(name.lower() == "transfer-encoding" for name, _ in headers):
            headers += [("Content-Length", str(len(encode(body))))]
    return h11.Request(method=method, target="/v2/chat", headers=headers)


def encode(body: JSON) -> bytes:
    return json.dumps(body).encode()


def receive(client: h11.Connection, sock: socket.socket) -> tuple[h11.Response, bytes]:
    """Read one whole response (after any 1xx) with an h11 client.

    The client must have sent the request, or sent nothing: then the response is a refusal of
    bytes that were no request.
    """
    response: h11.Response | None = None
    chunks: list[bytes] = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            chunks.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, b"".join(chunks)
        else:
            assert isinstance(event, h11.InformationalResponse), event


def header(response: h11.Response, name: bytes) -> bytes | None:
    return next((value for key, value in response.headers if key == name), None)


def assert_closed(sock: socket.socket) -> None:
    """The server has closed the connection: nothing more comes, only the end of stream."""
    assert sock.recv(65536) == b""
    # Closing our side too ends the server's wait for whatever we might still send.
    sock.close()


def assert_refused(response: h11.Response, body: bytes, status: int) -> None:
    assert response.status_code == status
    assert header(response, b"connection") == b"close"
    assert header(response, b"content-type") == b"application/json"
    error = json.loads(body)
    assert set(error) == {"id", "message"} and error["message"].startswith("invalid request")


def assert_still_serving(server: OfflineServer, capfd: pytest.CaptureFixture[str]) -> None:
    """Every connection handler finished without a traceback, and the server answers."""
    port = server.base_url.rsplit(":", 1)[1]
    for thread in threading.enumerate():
        if thread.name == f"streamkit-offline-{port}-connection":
            thread.join(10)
            assert not thread.is_alive()
    reply = httpx.post(
        server.base_url + "/v2/chat", json=BODY, headers={"Authorization": "Bearer t"}
    )
    assert reply.json() == script_reply(BODY).response()
    assert capfd.readouterr().err == ""


# --- Bodies -------------------------------------------------------------------------------------


def test_a_chunked_body_written_a_byte_at_a_time_is_read(
    server: OfflineServer, sock: socket.socket
) -> None:
    client = h11.Connection(h11.CLIENT)
    data = client.send(request(BODY, extra=[("Transfer-Encoding", "chunked")]))
    content = encode(BODY)
    for start in range(0, len(content), 5):
        data += client.send(h11.Data(data=content[start : start + 5]))
    data += client.send(h11.EndOfMessage(headers=[("X-Trailer", "ignored")]))
    for position in range(len(data)):
        sock.sendall(data[position : position + 1])
    response, body = receive(client, sock)
    assert response.status_code == 200
    assert json.loads(body) == script_reply(BODY).response()
    assert server.requests[-1].body == BODY


@settings(max_examples=40, deadline=None)
@given(
    chunk_sizes=st.lists(st.integers(1, 40), min_size=1), write_sizes=st.lists(st.integers(1, 90))
)
def test_any_chunking_in_any_writes_gives_the_same_body(
    shared_server: OfflineServer, chunk_sizes: list[int], write_sizes: list[int]
) -> None:
    client = h11.Connection(h11.CLIENT)
    content = encode(BODY)
    data = client.send(request(BODY, extra=[("Transfer-Encoding", "chunked")]))
    start = 0
    for size in chunk_sizes * (len(content) // sum(chunk_sizes) + 1):
        if start < len(content):
            data += client.send(h11.Data(data=content[start : start + size]))
        start += size
    data += client.send(h11.EndOfMessage())
    with connect(shared_server) as sock:
        start = 0
        for size in [*write_sizes, len(data)]:
            sock.sendall(data[start : start + size])
            start += size
        response, body = receive(client, sock)
    assert response.status_code == 200
    assert json.loads(body) == script_reply(BODY).response()
    assert shared_server.requests[-1].body == BODY


def test_a_chunk_extension_is_allowed(server: OfflineServer, sock: socket.socket) -> None:
    client = h11.Connection(h11.CLIENT)
    content = encode(BODY)
    sock.sendall(client.send(request(BODY, extra=[("Transfer-Encoding", "chunked")])))
    # h11 writes no chunk extensions, so this chunk is framed by hand.
    sock.sendall(b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(content), content))
    client.send(h11.EndOfMessage())
    response, _ = receive(client, sock)
    assert response.status_code == 200
    assert server.requests[-1].body == BODY


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", id="not-hex"),
        pytest.param(b"-2\r\n{}\r\n0\r\n\r\n", id="negative"),
        pytest.param(b"1" * 21 + b"\r\n{}\r\n0\r\n\r\n", id="too-many-digits"),
        pytest.param(b"2\r\n{}XX0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(b"\r\n\r\n", id="empty-size-line"),
    ],
)
def test_a_bad_chunk_gets_400_and_a_closed_connection(
    server: OfflineServer, sock: socket.socket, capfd: pytest.CaptureFixture[str], chunks: bytes
) -> None:
    client = h11.Connection(h11.CLIENT)
    sock.sendall(client.send(request(BODY, extra=[("Transfer-Encoding", "chunked")])) + chunks)
    response, body = receive(client, sock)
    assert_refused(response, body, 400)
    assert_closed(sock)
    assert server.requests == []  # a request that could not be read is not recorded
    assert_still_serving(server, capfd)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([], id="one-byte-over"),
        pytest.param([("Expect", "100-continue")], id="expect-100-continue"),
    ],
)
def test_a_content_length_over_the_limit_gets_413_before_the_body_is_sent(
    server: OfflineServer,
    sock: socket.socket,
    capfd: pytest.CaptureFixture[str],
    extra: list[tuple[str, str]],
) -> None:
    client = h11.Connection(h11.CLIENT)
    head = request(extra=[("Content-Length", str(LIMIT + 1)), *extra])
    sock.sendall(client.send(head))
    # No body is sent: the refusal comes without it (and without a "100 Continue" first).
    response, body = receive(client, sock)
    assert_refused(response, body, 413)
    assert_closed(sock)
    assert server.requests == []
    assert_still_serving(server, capfd)


def test_a_chunked_body_over_the_limit_gets_413(
    server: OfflineServer, sock: socket.socket, capfd: pytest.CaptureFixture[str]
) -> None:
    client = h11.Connection(h11.CLIENT)
    sock.sendall(client.send(request(BODY, extra=[("Transfer-Encoding", "chunked")])))
    megabyte = b" " * (1024 * 1024)
    for _ in range(LIMIT // len(megabyte)):
        sock.sendall(client.send(h11.Data(data=megabyte)))
    # The limit is reached exactly; one byte more is refused, whatever follows it.
    sock.sendall(client.send(h11.Data(data=b"{")) + client.send(h11.EndOfMessage()))
    response, body = receive(client, sock)
    assert_refused(response, body, 413)
    assert_closed(sock)
    assert_still_serving(server, capfd)


def test_expect_100_continue_is_answered_before_the_body(
    server: OfflineServer, sock: socket.socket
) -> None:
    client = h11.Connection(h11.CLIENT)
    sock.sendall(client.send(request(BODY, extra=[("Expect", "100-continue")])))
    client.receive_data(sock.recv(65536))
    interim = client.next_event()
    assert isinstance(interim, h11.InformationalResponse) and interim.status_code == 100
    sock.sendall(client.send(h11.Data(data=encode(BODY))) + client.send(h11.EndOfMessage()))
    response, _ = receive(client, sock)
    assert response.status_code == 200
    assert server.requests[-1].body == BODY


# --- Keep-alive ---------------------------------------------------------------------------------


def test_requests_on_one_keep_alive_connection_are_all_answered(
    server: OfflineServer, sock: socket.socket
) -> None:
    client = h11.Connection(h11.CLIENT)
    reply = script_reply(BODY)

    sock.sendall(client.send(request(BODY)) + client.send(h11.Data(data=encode(BODY))))
    sock.sendall(client.send(h11.EndOfMessage()))
    response, body = receive(client, sock)
    assert response.status_code == 200 and json.loads(body) == reply.response()
    assert header(response, b"connection") is None
    client.start_next_cycle()

    streamed = {**BODY, "stream": True}
    sock.sendall(client.send(request(streamed)) + client.send(h11.Data(data=encode(streamed))))
    sock.sendall(client.send(h11.EndOfMessage()))
    response, body = receive(client, sock)
    assert response.status_code == 200
    assert header(response, b"transfer-encoding") == b"chunked"
    assert body.endswith(b"data: [DONE]\n\n")
    assert body.count(b"event: ") == len(reply.stream_events())
    client.start_next_cycle()

    # A response to HEAD has headers only: the connection stays in step for the next request.
    sock.sendall(client.send(request(method="HEAD")) + client.send(h11.EndOfMessage()))
    response, body = receive(client, sock)
    assert response.status_code == 405 and body == b""
    assert int(header(response, b"content-length") or 0) > 0
    client.start_next_cycle()

    sock.sendall(client.send(request(method="GET")) + client.send(h11.EndOfMessage()))
    response, body = receive(client, sock)
    assert response.status_code == 405 and json.loads(body)["message"]
    assert [r.method for r in server.requests] == ["POST", "POST", "HEAD", "GET"]


def test_pipelined_requests_are_answered_in_order(
    server: OfflineServer, sock: socket.socket
) -> None:
    first, second = BODY, {**BODY, "messages": [{"role": "user", "content": "And then?"}]}
    sock.sendall(b"".join(serialise(body) for body in (first, second)))
    client = h11.Connection(h11.CLIENT)
    for body in (first, second):
        # The h11 client has to have sent each request to read its response.
        client.send(request(body))
        client.send(h11.Data(data=encode(body)))
        client.send(h11.EndOfMessage())
        response, content = receive(client, sock)
        assert response.status_code == 200
        assert json.loads(content) == script_reply(body).response()
        client.start_next_cycle()
    assert [r.body for r in server.requests] == [first, second]


def serialise(body: JSON) -> bytes:
    """One whole request with a Content-Length body, as h11 writes it."""
    client = h11.Connection(h11.CLIENT)
    return b"".join(
        [
            client.send(request(body)),
            client.send(h11.Data(data=encode(body))),
            client.send(h11.EndOfMessage()),
        ]
    )


# --- Malformed requests -------------------------------------------------------------------------

GARBAGE = [
    pytest.param(b"\x00\x01garbage\r\n\r\n", id="binary"),
    pytest.param(b"NOT A REQUEST LINE AT ALL\r\n\r\n", id="bad-request-line"),
    pytest.param(b"POST /v2/chat HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", id="bad-header"),
    pytest.param(b"POST /v2/chat HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", id="cl"),
    pytest.param(b"half a request line", id="cut-short"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_pipelined_garbage_after_a_request_does_not_crash_the_server_thread(
    server: OfflineServer,
    sock: socket.socket,
    capfd: pytest.CaptureFixture[str],
    garbage: bytes,
) -> None:
    sock.sendall(serialise(BODY) + garbage)
    # Without a line end, the garbage is still waiting for more: the end of stream cuts it short.
    sock.shutdown(socket.SHUT_WR)
    client = h11.Connection(h11.CLIENT)
    client.send(request(BODY))
    client.send(h11.Data(data=encode(BODY)))
    client.send(h11.EndOfMessage())
    response, content = receive(client, sock)
    assert response.status_code == 200
    assert json.loads(content) == script_reply(BODY).response()
    client.start_next_cycle()
    # The garbage is no request: it gets a 400, then the connection closes.
    response, content = receive(client, sock)
    assert_refused(response, content, 400)
    assert_closed(sock)
    assert [r.body for r in server.requests] == [BODY]
    assert_still_serving(server, capfd)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        *[pytest.param(garbage.values[0], 400, id=garbage.id) for garbage in GARBAGE],
        pytest.param(
            b"POST /v2/chat HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
            400,
            id="content-length-of-5000-digits",
        ),
        pytest.param(b"POST /v2/chat HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400, id="no-host"),
        # h11 weighs a head only while it is incomplete: more than the server reads at once.
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200_000 + b"\r\n\r\n",
            431,
            id="huge-head",
        ),
        pytest.param(
            b"POST /v2/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            id="not-chunked",
        ),
    ],
)
def test_h11_chooses_the_status_for_a_malformed_request(
    server: OfflineServer,
    sock: socket.socket,
    capfd: pytest.CaptureFixture[str],
    head: bytes,
    status: int,
) -> None:
    sock.sendall(head)
    sock.shutdown(socket.SHUT_WR)
    # No request could be read, so the refusal is the first response h11 sees.
    response, body = receive(h11.Connection(h11.CLIENT), sock)
    assert_refused(response, body, status)
    assert_closed(sock)
    assert server.requests == []
    assert_still_serving(server, capfd)
