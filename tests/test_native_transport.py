"""What only the native transport does (``AsyncClient(transport="native")``).

Everything the two asyncio transports share (errors, retries, timeouts, cancellation,
leaks, secrets) is tested once over both: the ``async_transport`` fixture and the
``async-httpx`` / ``async-native`` modes of ``tests/reliability``. Here: its HTTP/1.1
framing, driven byte by byte without a socket, over each response parser (chunked bodies
split anywhere, Content-Length, to the close, gzip, broken framing), the ``parser``
option, its keep-alive pool, flow control for a
slow iterator, and conformance with the httpx transport over every recorded fixture.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import random
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from streamkit import AsyncClient, ChatEvent, NativeTransport, to_async_iterator
from streamkit import errors as E
from streamkit._engine import StreamEngine
from streamkit._http11 import ParserName, reader_factory
from streamkit._native import _Connection
from tests.reliability.test_leaks import expected_text, tagged
from tests.scripted_server import (
    Chunk,
    Close,
    Finish,
    Headers,
    Push,
    ScriptedServer,
    Wait,
    sse_events,
)
from tests.test_client import KEY, MESSAGES, acollect, sse_ok, text_stream
from tests.transports import (
    ASYNC_TRANSPORTS,
    AsyncTransportName,
    LedgerNativeTransport,
    async_client,
)

# ----------------------------------------------------------------------------- framing


class _FakeTransport(asyncio.Transport):
    """Records what the connection writes; the test hands it the response bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.aborted = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = [], 0
    for size in sizes:
        piece = body[at : at + size]
        at += size
        if piece:
            out.append(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
    if at < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
    return b"".join(out) + b"0\r\nX-Trailer: 1\r\n\r\n"


_BODY = b"".join(
    step.data for step in sse_events(text_stream("Hello", " wor", "ld")) if isinstance(step, Chunk)
)


@functools.cache
def _request_builder() -> AsyncClient:
    """A client that only builds requests (it never connects, so never needs closing)."""
    return AsyncClient(KEY, base_url="http://127.0.0.1:9", transport="native")


PARSERS: tuple[ParserName, ...] = ("h11", "httptools")


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> ParserName:
    """A response parser's name: a framing test that takes it runs once over each."""
    name: ParserName = request.param
    return name


def _feed(
    pieces: list[bytes], parser: ParserName, *, eof: bool = False
) -> tuple[list[ChatEvent], Any]:
    """Feed a response, cut into ``pieces``, to one native connection; no socket."""

    async def main() -> tuple[list[ChatEvent], Any, bool]:
        client = _request_builder()
        outgoing = client._config.outgoing(
            {"model": "m", "messages": MESSAGES}, stream=True, options=None
        )
        engine = StreamEngine(client.transport.build_request(outgoing), client._config.plan(None))
        connection = _Connection(reader_factory(parser)())
        transport = _FakeTransport()
        connection.connection_made(transport)
        events: list[ChatEvent] = []
        finished = connection.exchange(engine, engine.attempt(), events.append, None, None)
        for piece in pieces:
            connection.data_received(piece)
        if eof:
            connection.eof_received()
        error = None
        try:
            await asyncio.wait_for(finished, 1)
        except Exception as caught:  # the test inspects it
            error = caught
        return events, error, connection.reusable and connection.reuse()

    events, error, reusable = asyncio.run(main())
    return events, (error, reusable)


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    return [raw[a:b] for a, b in zip(points, points[1:], strict=False)]


_HEAD_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_EXPECTED = [e["type"] for e in text_stream("Hello", " wor", "ld")]


def test_a_chunked_body_cut_at_every_byte_gives_the_same_events(parser: ParserName) -> None:
    raw = _HEAD_CHUNKED + _chunked(_BODY, [7, 1, 30, 2, 100])
    for cut in range(1, len(raw)):
        events, (error, reusable) = _feed([raw[:cut], raw[cut:]], parser)
        assert error is None, (cut, error)
        assert [e.type for e in events] == _EXPECTED and reusable, cut


@pytest.mark.parametrize("seed", range(40))
def test_chunked_bodies_of_any_chunk_sizes_cut_anywhere(seed: int, parser: ParserName) -> None:
    rng = random.Random(seed)
    sizes = [rng.randint(1, 40) for _ in range(rng.randint(1, 30))]
    raw = _HEAD_CHUNKED + _chunked(_BODY, sizes)
    cuts = [rng.randrange(len(raw)) for _ in range(rng.randint(1, 40))]
    events, (error, reusable) = _feed(_split(raw, cuts), parser)
    assert error is None and reusable
    assert [e.type for e in events] == _EXPECTED
    assert "".join(getattr(e, "text", None) or "" for e in events) == "Hello world"


@pytest.mark.parametrize(
    ("head", "body", "eof", "reusable"),
    [
        pytest.param(b"Content-Length: %d\r\n" % len(_BODY), _BODY, False, True, id="length"),
        pytest.param(b"", _BODY, True, False, id="to-the-close"),
        pytest.param(
            b"Content-Encoding: gzip\r\nContent-Length: %d\r\n" % len(gzip.compress(_BODY)),
            gzip.compress(_BODY),
            False,
            True,
            id="gzip-length",
        ),
        pytest.param(
            b"Content-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n",
            _chunked(zlib.compress(_BODY), [5, 9]),
            False,
            True,
            id="deflate-chunked",
        ),
    ],
)
def test_other_framings_and_codings(
    head: bytes, body: bytes, eof: bool, reusable: bool, parser: ParserName
) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + head + b"\r\n" + body
    for cut in range(1, len(raw), 7):
        events, (error, kept) = _feed([raw[:cut], raw[cut:]], parser, eof=eof)
        assert error is None, (cut, error)
        assert [e.type for e in events] == _EXPECTED and kept is reusable


@pytest.mark.parametrize(
    ("raw", "error_type"),
    [
        pytest.param(_HEAD_CHUNKED + b"zz\r\n", E.StreamInterruptedError, id="bad-chunk-size"),
        pytest.param(b"SPDY/3 200 OK\r\n\r\n", E.APIConnectionError, id="not-http"),
        pytest.param(
            _HEAD_CHUNKED + _chunked(_BODY, [20])[:-30], E.StreamInterruptedError, id="cut-short"
        ),
    ],
)
def test_broken_framing_is_a_typed_error(
    raw: bytes, error_type: type[Exception], parser: ParserName
) -> None:
    events, (error, reusable) = _feed([raw], parser, eof=True)
    assert isinstance(error, error_type) and not reusable


def test_an_interim_100_continue_is_skipped(parser: ParserName) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + _HEAD_CHUNKED + _chunked(_BODY, [50])
    events, (error, _) = _feed([raw], parser)
    assert error is None and [e.type for e in events] == _EXPECTED


# ----------------------------------------------------------------------------- the parser option


def test_the_parser_is_h11_unless_httptools_is_asked_for() -> None:
    assert NativeTransport().parser == "h11" and repr(NativeTransport()) == "NativeTransport()"
    fast = NativeTransport(parser="httptools")
    assert fast.parser == "httptools"
    assert repr(fast) == "NativeTransport(parser='httptools')"
    with pytest.raises(ValueError, match="'h11' or 'httptools'"):
        NativeTransport(parser="llhttp")  # type: ignore[arg-type]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_streamkit_does_not_import_httptools() -> None:
    done = _python(
        "import streamkit, sys\n"
        "streamkit.AsyncClient('k', transport='native')\n"
        "assert 'httptools' not in sys.modules, 'imported'\n"
    )
    assert done.returncode == 0, done.stderr


def test_without_httptools_asking_for_it_is_a_typed_error_naming_the_extra() -> None:
    done = _python(
        "import sys; sys.modules['httptools'] = None\n"
        "from streamkit import NativeTransport, errors\n"
        "NativeTransport()  # h11 needs nothing more\n"
        "try:\n"
        "    NativeTransport(parser='httptools')\n"
        "except errors.ParserNotInstalledError as error:\n"
        "    assert isinstance(error, ImportError) and isinstance(error, errors.StreamkitError)\n"
        "    print(error)\n"
        "else:\n"
        "    raise AssertionError('made')\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'cohere-streamkit[fast]'" in done.stdout


# ----------------------------------------------------------------------------- connections


def _set_ignoring(event: asyncio.Event, _: object) -> None:
    event.set()


NATIVE_NAMES: tuple[AsyncTransportName, ...] = ("native", "native-httptools")


@pytest.mark.parametrize("name", NATIVE_NAMES)
def test_completed_streams_reuse_one_keep_alive_connection(
    scripted: ScriptedServer, name: AsyncTransportName
) -> None:
    for _ in range(4):
        scripted.enqueue(sse_ok(text_stream("again")))
    scripted.enqueue([Headers(), *sse_events(text_stream("x")[:2], done=False), Close()])
    scripted.enqueue(sse_ok(text_stream("fresh")))

    async def main() -> list[Any]:
        async with async_client(
            KEY, base_url=scripted.base_url, max_retries=0, transport=name
        ) as client:
            outcomes = [await acollect(client) for _ in range(2)]
            for _ in range(2):
                done = asyncio.Event()
                client.chat_stream(model="m", messages=MESSAGES).subscribe(
                    on_error=functools.partial(_set_ignoring, done), on_completed=done.set
                )
                await asyncio.wait_for(done.wait(), 5)
            assert scripted.accepts == 1  # four streams, one connection
            outcomes += [await acollect(client) for _ in range(2)]
            return outcomes

    outcomes = asyncio.run(main())
    assert all(error is None for _, error in outcomes[:2])
    assert isinstance(outcomes[2][1], E.StreamInterruptedError) and outcomes[3][1] is None
    assert scripted.accepts == 2  # the broken connection was not reused
    scripted.wait_idle()  # aclose() closed the pooled one


@pytest.mark.parametrize("parser", PARSERS)
def test_fifty_concurrent_streams_share_the_pool_without_cross_talk(parser: ParserName) -> None:
    # Half iterate (the buffered path), half subscribe (events pushed from data_received).
    async def iterate(client: AsyncClient, tag: str) -> list[ChatEvent]:
        messages = [{"role": "user", "content": tag}]
        async with to_async_iterator(client.chat_stream(model="m", messages=messages)) as it:
            return [event async for event in it]

    async def subscribe(client: AsyncClient, tag: str) -> list[ChatEvent]:
        messages = [{"role": "user", "content": tag}]
        events: list[ChatEvent] = []
        done = asyncio.Event()
        client.chat_stream(model="m", messages=messages).subscribe(
            events.append, functools.partial(_set_ignoring, done), done.set
        )
        await asyncio.wait_for(done.wait(), 10)
        return events

    with ScriptedServer(default=tagged) as server:

        async def main() -> list[list[ChatEvent]]:
            native = LedgerNativeTransport(max_idle_per_origin=10, parser=parser)
            async with AsyncClient(KEY, base_url=server.base_url, transport=native) as client:
                results = await asyncio.gather(
                    *((iterate if i % 2 else subscribe)(client, f"t{i:02d}") for i in range(50))
                )
                assert native.ledger.in_use() == []  # every connection released or closed
                assert len(native.ledger.idle()) <= 10  # the pool keeps at most that many
                assert asyncio.all_tasks() == {asyncio.current_task()}
            await native.aclose()
            assert all(connection.closed for connection in native.ledger.opened)
            return results

        results = asyncio.run(main())
        assert server.accepts <= 50
    for i, events in enumerate(results):
        tag = f"t{i:02d}"
        assert events[0].id == tag  # type: ignore[union-attr]
        assert "".join(getattr(e, "text", None) or "" for e in events) == expected_text(tag)
        assert events[-1].type == "message-end"


@pytest.mark.parametrize("name", NATIVE_NAMES)
def test_a_slow_iterator_stops_the_reading(
    scripted: ScriptedServer, name: AsyncTransportName
) -> None:
    delta = sse_events([text_stream("x")[2]], done=False)[0]
    assert isinstance(delta, Chunk)
    gate = threading.Event()
    scripted.enqueue(
        [
            Headers(),
            *sse_events(text_stream()[:2], done=False),
            Push(delta.data, 200_000),
            Wait(gate),
        ]
    )

    async def main() -> int:
        async with async_client(KEY, base_url=scripted.base_url, transport=name) as client:
            stream = client.chat_stream(model="m", messages=MESSAGES)
            async with to_async_iterator(stream) as events:
                await events.__anext__()
                await asyncio.sleep(0.5)  # the consumer dawdles; the socket buffers fill
                sent = scripted.wait_for_request(1).bytes_sent
                await asyncio.sleep(0.3)
                assert scripted.wait_for_request(1).bytes_sent == sent  # the server is held back
                return sent

    sent = asyncio.run(main())
    gate.set()
    assert sent < 200_000 * len(delta.data) // 4


# ----------------------------------------------------------------------------- conformance

_FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.sse"))


def _outcome(events: list[ChatEvent], error: BaseException | None) -> Any:
    partial = getattr(error, "partial_message", None)
    return (
        [e.model_dump() for e in events],
        type(error),
        str(error) if error is not None else None,
        partial.model_dump() if partial is not None else None,
    )


@pytest.mark.parametrize("path", _FIXTURES, ids=[p.stem for p in _FIXTURES])
def test_native_and_httpx_transports_agree_on_every_fixture(path: Path) -> None:
    body = path.read_bytes()
    # One chunk per event, as on a live connection.
    pieces = [p + b"\n\n" for p in body.replace(b"\r\n", b"\n").split(b"\n\n") if p]
    if b"\r\n" in body:
        pieces = [body]
    outcomes = []
    with ScriptedServer(default=[Headers(), *(Chunk(p) for p in pieces), Finish()]) as server:
        for transport in ASYNC_TRANSPORTS:

            async def main(transport: AsyncTransportName = transport) -> Any:
                async with async_client(
                    KEY,
                    base_url=server.base_url,
                    transport=transport,
                    max_retries=0,
                ) as client:
                    return await acollect(client)

            outcomes.append(_outcome(*asyncio.run(main())))
    assert outcomes[0] == outcomes[1] == outcomes[2]
