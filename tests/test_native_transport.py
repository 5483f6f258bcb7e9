"""``AsyncClient(transport="native")``: the async behaviours of the httpx transport, again.

Most tests here are the existing async tests of ``test_client``, ``test_retries`` and
``tests/reliability``, collected a second time with every ``AsyncClient`` they create
switched to the native transport (the autouse fixture below); tests parametrised over the
three consumption modes run their ``async`` mode only. The rest cover what only the native
transport does: its HTTP/1.1 framing (chunked bodies split anywhere, Content-Length, to the
close, gzip), its keep-alive pool, flow control for a slow iterator, and conformance with
the httpx transport over every recorded fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from streamkit import AsyncClient, ChatEvent, to_async_iterator
from streamkit import errors as E
from tests.reliability import (
    test_bad_events,
    test_cancellation,
    test_leaks,
    test_secrets,
    test_transport_faults,
)
from tests.scripted_server import (
    Chunk,
    Close,
    Finish,
    Headers,
    Push,
    ScriptedServer,
    Stall,
    Wait,
    sse_events,
)
from tests.test_client import KEY, MESSAGES, acollect, sse_ok, start, text_stream

_ORIGINAL_INIT = AsyncClient.__init__
_ORIGINAL_CLIENT = AsyncClient
_native_clients: list[AsyncClient] = []


@pytest.fixture(autouse=True)
def native_by_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every AsyncClient made without an ``http_client`` uses the native transport."""

    def init(self: AsyncClient, *args: Any, **options: Any) -> None:
        if options.get("http_client") is None:
            options.setdefault("transport", "native")
        _ORIGINAL_INIT(self, *args, **options)
        if options.get("transport") == "native":
            _native_clients.append(self)

    monkeypatch.setattr(AsyncClient, "__init__", init)

    @contextlib.asynccontextmanager
    async def native_client(
        base_url: str, *, transport: object = None, **options: Any
    ) -> AsyncIterator[AsyncClient]:
        # The reused tests' "pool of one" httpx client: here the native pool instead.
        assert transport is None, "a custom httpx transport cannot be native"
        async with AsyncClient(KEY, base_url=base_url, **options) as client:
            yield client

    for module in (test_cancellation, test_leaks, test_transport_faults):
        if hasattr(module, "apool1_client"):
            monkeypatch.setattr(module, "apool1_client", native_client)
    _native_clients.clear()
    yield
    _native_clients.clear()


def _async_only(test: Callable[..., None]) -> Callable[..., None]:
    """The same test, with its ``mode`` parameter narrowed to ``"async"``."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        test(*args, **kwargs)
        assert _native_clients, "the test made no native AsyncClient"

    marks = [
        mark
        for mark in getattr(test, "pytestmark", [])
        if not (mark.name == "parametrize" and mark.args[0] == "mode")
    ]
    run.pytestmark = [*marks, pytest.mark.parametrize("mode", ["async"])]  # type: ignore[attr-defined]
    return run


def _native(test: Callable[..., None]) -> Callable[..., None]:
    """The same test, checked to have run on the native transport."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        test(*args, **kwargs)
        assert _native_clients, "the test made no native AsyncClient"

    return run


# ----------------------------------------------------------------------------- reused tests

from tests import test_client as _client_tests  # noqa: E402
from tests import test_retries as _retry_tests  # noqa: E402

test_async_stream_from_offline_backend = _native(
    _client_tests.test_async_stream_from_offline_backend
)
test_async_observable_runs_on_the_callers_loop = _native(
    _client_tests.test_async_observable_runs_on_the_callers_loop
)
test_async_http_errors = _native(_client_tests.test_async_http_errors)
test_async_stream_errors_carry_the_partial_message = _native(
    _client_tests.test_async_stream_errors_carry_the_partial_message
)
test_async_idle_timeout_and_retry = _native(_retry_tests.test_async_idle_timeout_and_retry)
test_asyncio_timeout_around_a_stalled_stream = _native(
    _retry_tests.test_asyncio_timeout_around_a_stalled_stream
)

_F = test_transport_faults
test_f2_not_an_event_stream = _async_only(
    _F.test_f2_a_200_that_is_not_an_event_stream_is_a_protocol_error_with_the_body
)
test_f2_content_type_parameters = _async_only(
    _F.test_f2_content_type_parameters_and_case_are_accepted
)
test_catalogue_77_a_204 = _async_only(_F.test_catalogue_77_a_204_is_no_stream_and_a_typed_error)
test_f4_first_byte_timeout = _async_only(
    _F.test_f4_no_headers_ever_is_a_first_byte_timeout_retried_then_raised
)
test_f5_stall_after_two_events = _async_only(
    _F.test_f5_a_stall_after_two_events_times_out_with_the_partial_message
)
test_f6_keep_alive_comments = _async_only(
    _F.test_f6_keep_alive_comments_do_not_reset_the_event_idle_timeout
)
test_f7_slowloris = _async_only(
    _F.test_f7_slowloris_is_stopped_by_the_deadline_or_the_event_idle_timeout
)
test_f8_f9_broken_connection = _async_only(
    _F.test_f8_f9_a_broken_connection_mid_stream_is_interrupted_never_retried
)
test_f10_truncated = _async_only(_F.test_f10_clean_eof_before_message_end_is_truncated)
test_f10_empty_body = _async_only(_F.test_f10_an_empty_200_body_is_truncated_not_a_success)
test_f11_finish_reason_error = _async_only(
    _F.test_f11_finish_reason_error_is_a_server_error_after_the_raw_event
)
test_f12_max_retries_zero = _async_only(_F.test_f12_max_retries_zero_per_client_and_per_request)
test_f14_gzip = _async_only(_F.test_f14_gzip_body_is_decoded_and_each_event_arrives_with_its_block)
test_f15_fragmentation = _async_only(
    _F.test_f15_proxy_buffering_or_fragmentation_changes_timing_never_content
)
test_f16_redirects_are_typed_errors = _async_only(
    _F.test_f16_redirects_off_by_default_are_a_typed_error
)
test_f6_slow_consumer_idle = _async_only(_F.test_f6_a_slow_consumer_does_not_trip_the_idle_timeout)

_B = test_bad_events
test_b1_malformed_json = _async_only(_B.test_b1_malformed_json_ends_the_stream_with_the_raw_event)
test_b2_wrong_shape = _async_only(
    _B.test_b2_wrong_shape_carries_pydantic_details_and_the_raw_payload
)
test_b3_unknown_type = _async_only(
    _B.test_b3_unknown_type_passes_through_quietly_and_the_rest_is_intact
)
test_b4_b10_bad_json_values = _async_only(
    _B.test_b4_b10_bad_json_values_are_malformed_never_a_crash
)
test_b7_done = _async_only(_B.test_b7_done_completes_and_what_follows_is_never_parsed)

_L = test_leaks
test_l4_twice_the_limit = _async_only(
    _L.test_l4_twice_the_limit_is_a_typed_error_without_reading_the_rest
)
test_l4_just_under_the_limit = _async_only(_L.test_l4_just_under_the_limit_is_parsed)
test_l2_reference_counting = _native(
    _L.test_l2_async_stream_objects_die_by_reference_counting_alone
)

_C = test_cancellation
test_c3_task_cancel_while_awaiting = _native(_C.test_c3_task_cancel_while_awaiting_the_next_event)
test_c3_task_cancel_in_backoff = _native(_C.test_c3_task_cancel_while_sleeping_in_a_retry_backoff)
test_c3_cancel_the_subscribing_task = _native(
    _C.test_c3_cancel_the_task_that_subscribed_an_async_observable
)
test_c4_asyncio_timeout = _native(_C.test_c4_asyncio_timeout_around_a_stalled_stream)
test_c5_async_with_break = _native(_C.test_c5_async_with_closes_at_once_on_break)
test_c5_bare_async_for_break = _native(
    _C.test_c5_bare_async_for_break_closes_when_the_iterator_is_dropped
)
test_c6_errors_propagate_unchanged = _native(
    _C.test_c6_async_errors_in_the_loop_body_and_on_next_propagate_unchanged
)
test_c8_slow_consumer_of_50_mb = _native(
    _C.test_c8_async_slow_consumer_of_50_mb_holds_bounded_memory
)

_S = test_secrets
all_logs = _S.all_logs  # the fixtures the reused test asks for
canary = _S.canary
test_s1_s2_s3_s5_no_key = _async_only(
    _S.test_s1_s2_s3_s5_the_key_appears_nowhere_but_in_authorization
)


# ----------------------------------------------------------------------------- the option


def test_transport_accepts_only_httpx_or_native() -> None:
    with pytest.raises(ValueError, match="transport"):
        AsyncClient(KEY, transport="h2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http_client"):
        AsyncClient(KEY, transport="native", http_client=httpx.AsyncClient())


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
    """A client that only builds requests (never sends one, so never needs closing)."""
    return _ORIGINAL_CLIENT(KEY, base_url="http://127.0.0.1:9")


def _feed(pieces: list[bytes], *, eof: bool = False) -> tuple[list[ChatEvent], Any]:
    """Feed a response, cut into ``pieces``, to one native connection; no socket."""
    from streamkit._engine import StreamEngine
    from streamkit._native import _Connection

    async def main() -> tuple[list[ChatEvent], Any, bool]:
        client = _request_builder()
        outgoing = client._config.outgoing(
            {"model": "m", "messages": MESSAGES}, stream=True, options=None
        )
        engine = StreamEngine(client.transport.build_request(outgoing), client._config.plan(None))
        connection = _Connection()
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


def test_a_chunked_body_cut_at_every_byte_gives_the_same_events() -> None:
    raw = _HEAD_CHUNKED + _chunked(_BODY, [7, 1, 30, 2, 100])
    for cut in range(1, len(raw)):
        events, (error, reusable) = _feed([raw[:cut], raw[cut:]])
        assert error is None, (cut, error)
        assert [e.type for e in events] == _EXPECTED and reusable, cut


@pytest.mark.parametrize("seed", range(40))
def test_chunked_bodies_of_any_chunk_sizes_cut_anywhere(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.randint(1, 40) for _ in range(rng.randint(1, 30))]
    raw = _HEAD_CHUNKED + _chunked(_BODY, sizes)
    cuts = [rng.randrange(len(raw)) for _ in range(rng.randint(1, 40))]
    events, (error, reusable) = _feed(_split(raw, cuts))
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
            _chunked(__import__("zlib").compress(_BODY), [5, 9]),
            False,
            True,
            id="deflate-chunked",
        ),
    ],
)
def test_other_framings_and_codings(head: bytes, body: bytes, eof: bool, reusable: bool) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + head + b"\r\n" + body
    for cut in range(1, len(raw), 7):
        events, (error, kept) = _feed([raw[:cut], raw[cut:]], eof=eof)
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
def test_broken_framing_is_a_typed_error(raw: bytes, error_type: type[Exception]) -> None:
    events, (error, reusable) = _feed([raw], eof=True)
    assert isinstance(error, error_type) and not reusable


def test_an_interim_100_continue_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + _HEAD_CHUNKED + _chunked(_BODY, [50])
    events, (error, _) = _feed([raw])
    assert error is None and [e.type for e in events] == _EXPECTED


# ----------------------------------------------------------------------------- connections


def _set_ignoring(event: asyncio.Event, _: object) -> None:
    event.set()


def test_completed_streams_reuse_one_keep_alive_connection(scripted: ScriptedServer) -> None:
    for _ in range(4):
        scripted.enqueue(sse_ok(text_stream("again")))
    scripted.enqueue([Headers(), *sse_events(text_stream("x")[:2], done=False), Close()])
    scripted.enqueue(sse_ok(text_stream("fresh")))

    async def main() -> list[Any]:
        async with AsyncClient(KEY, base_url=scripted.base_url, max_retries=0) as client:
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


def test_dispose_aborts_the_connection_and_the_server_sees_it(scripted: ScriptedServer) -> None:
    scripted.enqueue([Headers(), *sse_events([start()], done=False), Stall()])
    scripted.enqueue(sse_ok(text_stream("again")))

    async def main() -> list[ChatEvent]:
        async with AsyncClient(KEY, base_url=scripted.base_url) as client:
            first = asyncio.Event()
            subscription = client.chat_stream(model="m", messages=MESSAGES).subscribe(
                lambda _: first.set()
            )
            await asyncio.wait_for(first.wait(), 5)
            subscription.dispose()
            served = scripted.wait_for_request(1)
            for _ in range(500):
                if served.disconnected.is_set():
                    break
                await asyncio.sleep(0.01)
            assert served.disconnected.is_set()
            events, error = await acollect(client)
            assert error is None
            return events

    assert asyncio.run(main())[-1].type == "message-end"


def test_a_slow_iterator_stops_the_reading(scripted: ScriptedServer) -> None:
    delta = sse_events([text_stream("x")[2]], done=False)[0]
    assert isinstance(delta, Chunk)
    gate = __import__("threading").Event()
    scripted.enqueue(
        [
            Headers(),
            *sse_events(text_stream()[:2], done=False),
            Push(delta.data, 200_000),
            Wait(gate),
        ]
    )

    async def main() -> int:
        async with AsyncClient(KEY, base_url=scripted.base_url) as client:
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
        transports: list[Literal["httpx", "native"]] = ["httpx", "native"]
        for transport in transports:

            async def main(transport: Literal["httpx", "native"] = transport) -> Any:
                async with AsyncClient(
                    KEY,
                    base_url=server.base_url,
                    transport=transport,
                    max_retries=0,
                ) as client:
                    return await acollect(client)

            outcomes.append(_outcome(*asyncio.run(main())))
    assert outcomes[0] == outcomes[1]
