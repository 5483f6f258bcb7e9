"""The sync and async clients against real loopback servers speaking real SSE."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

import streamkit
from streamkit import (
    AsyncClient,
    AsyncHttpxTransport,
    ChatEvent,
    Client,
    ContentDeltaEvent,
    HttpxTransport,
    MessageEndEvent,
    NativeTransport,
    OfflineServer,
    UnknownEvent,
    to_async_iterator,
    to_iterator,
)
from streamkit import errors as E
from tests.collect import Collector
from tests.scripted_server import (
    Chunk,
    Close,
    Finish,
    Headers,
    Reset,
    ScriptedServer,
    Stall,
    Wait,
    json_response,
    sse_events,
)
from tests.transports import (
    AsyncTransportName,
    LedgerNativeTransport,
    async_client,
    parser_of,
    pooled_connections,
)

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
KEY = "co-test-key-0123456789"


def start(id: str = "m-1") -> dict[str, Any]:
    return {
        "id": id,
        "type": "message-start",
        "delta": {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        },
    }


def content_start(index: int = 0) -> dict[str, Any]:
    return {
        "type": "content-start",
        "index": index,
        "delta": {"message": {"content": {"type": "text", "text": ""}}},
    }


def delta(text: str, index: int = 0) -> dict[str, Any]:
    return {
        "type": "content-delta",
        "index": index,
        "delta": {"message": {"content": {"text": text}}},
    }


def end(reason: str = "COMPLETE", **extra: Any) -> dict[str, Any]:
    usage = {
        "billed_units": {"input_tokens": 5, "output_tokens": 2},
        "tokens": {"input_tokens": 50, "output_tokens": 2},
    }
    return {"type": "message-end", "delta": {"finish_reason": reason, "usage": usage, **extra}}


def text_stream(*pieces: str) -> list[dict[str, Any]]:
    return [
        start(),
        content_start(),
        *(delta(p) for p in pieces),
        {"type": "content-end", "index": 0},
        end(),
    ]


def sse_ok(events: list[dict[str, Any]], *, done: bool = True) -> list[Any]:
    return [Headers(), *sse_events(events, done=done), Finish()]


@contextlib.contextmanager
def pool1_client(base_url: str, **options: Any) -> Iterator[Client]:
    """A client on a pool of one connection: a leaked connection makes the next request fail."""
    limits = httpx.Limits(max_connections=1)
    with httpx.Client(limits=limits, timeout=httpx.Timeout(5.0, pool=1.0)) as http:
        yield Client(KEY, base_url=base_url, http_client=http, **options)


@contextlib.asynccontextmanager
async def apool1_client(
    base_url: str,
    transport: AsyncTransportName,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    **options: Any,
) -> AsyncIterator[AsyncClient]:
    """The async twin of :func:`pool1_client`, over either asyncio transport.

    ``httpx``: an ``httpx.AsyncClient`` with one connection (on ``http_transport``, if
    given), so a leaked connection makes the next request a ``PoolTimeout``. ``native``:
    its pool has no cap, so a :class:`~tests.transports.LedgerNativeTransport` fails any
    connect while another connection is in use, and every connection it opened must be
    closed once the client is.
    """
    if transport == "httpx":
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        timeout = httpx.Timeout(5.0, pool=1.0)
        async with httpx.AsyncClient(
            limits=limits, timeout=timeout, transport=http_transport
        ) as http:
            async with AsyncClient(KEY, base_url=base_url, http_client=http, **options) as client:
                yield client
        return
    assert http_transport is None, "an httpx transport is no part of the native transport"
    native = LedgerNativeTransport(one_at_a_time=True, parser=parser_of(transport))
    try:
        async with AsyncClient(KEY, base_url=base_url, transport=native, **options) as client:
            yield client
    finally:
        await native.aclose()  # a transport passed in is the caller's to close
    assert pooled_connections(client) == 0, "a connection outlived the client"


# ----------------------------------------------------------------------------- offline backend


def test_stream_from_offline_backend_is_typed_and_matches_non_streaming(
    offline: OfflineServer,
) -> None:
    with Client(KEY, base_url=offline.base_url) as client:
        events = list(to_iterator(client.chat_stream(model="command-a-03-2025", messages=MESSAGES)))
        reply = client.chat(model="command-a-03-2025", messages=MESSAGES)
    assert events[0].type == "message-start"
    assert isinstance(events[-1], MessageEndEvent)
    assert events[-1].finish_reason == "COMPLETE"
    text = "".join(e.text or "" for e in events if isinstance(e, ContentDeltaEvent))
    assert text == reply.text
    assert text


def test_observable_delivers_the_same_events_as_the_iterator(offline: OfflineServer) -> None:
    with Client(KEY, base_url=offline.base_url) as client:
        stream = client.chat_stream(model="command-a-03-2025", messages=MESSAGES)
        collector: Collector[ChatEvent] = Collector()
        collector.subscribe(stream)
        collector.wait()
        iterated = list(to_iterator(stream))
    assert collector.completed and collector.error is None
    assert collector.terminal_signals == 1
    assert collector.items == iterated


def test_stream_is_cold_one_request_per_subscription(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("a")), sse_ok(text_stream("b")))
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        assert scripted.requests == []  # nothing is sent before a subscription
        first = list(to_iterator(stream))
        second = list(to_iterator(stream))
    assert len(scripted.requests) == 2
    assert first != second


def test_request_goes_to_v2_chat_with_the_key_only_in_authorization(
    scripted: ScriptedServer,
) -> None:
    scripted.enqueue(sse_ok(text_stream("a")))
    with Client(KEY, base_url=scripted.base_url) as client:
        list(to_iterator(client.chat_stream(model="m", messages=MESSAGES, temperature=0.2)))
    request = scripted.requests[0]
    assert (request.method, request.path) == ("POST", "/v2/chat")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.2,
        "stream": True,
    }
    others = {k: v for k, v in request.headers.items() if k != "authorization"}
    assert KEY not in repr(others) and KEY not in request.path and KEY.encode() not in request.body


# ----------------------------------------------------------------------------- incremental delivery


def test_subscribe_returns_at_once_and_first_event_arrives_before_the_last_is_sent(
    scripted: ScriptedServer,
) -> None:
    gate = threading.Event()
    events = text_stream("Hello", " world")
    scripted.enqueue(
        [
            Headers(),
            *sse_events(events[:1], done=False),
            Wait(gate),
            *sse_events(events[1:]),
            Finish(),
        ]
    )
    with Client(KEY, base_url=scripted.base_url) as client:
        collector: Collector[ChatEvent] = Collector()
        collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        # subscribe() returned although the server holds the rest of the stream back:
        assert not collector.done.is_set()
        assert collector.first_item.wait(5), "the first event was not delivered on its own"
        assert [e.type for e in collector.items] == ["message-start"]
        gate.set()
        collector.wait()
    assert collector.completed
    assert [e.type for e in collector.items][-1] == "message-end"


def test_dispose_closes_the_response_and_frees_the_connection(scripted: ScriptedServer) -> None:
    scripted.enqueue([Headers(), *sse_events([start()], done=False), Stall()])
    scripted.enqueue(sse_ok(text_stream("again")))
    with pool1_client(scripted.base_url) as client:
        collector: Collector[ChatEvent] = Collector()
        subscription = collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        assert collector.first_item.wait(5)
        threads_before = {t for t in threading.enumerate() if t.name == "streamkit-stream"}
        subscription.dispose()
        assert scripted.wait_for_request(1).disconnected.wait(5), "the server saw no disconnect"
        for thread in threads_before:
            thread.join(5)
            assert not thread.is_alive()
        # No further signal after disposal:
        assert collector.error is None and not collector.completed
        # With a pool of one connection, a leak would make this a PoolTimeout:
        again = list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert again[-1].type == "message-end"


def test_breaking_out_of_the_iterator_cancels_the_request(scripted: ScriptedServer) -> None:
    scripted.enqueue([Headers(), *sse_events([start(), content_start()], done=False), Stall()])
    scripted.enqueue(sse_ok(text_stream("again")))
    with pool1_client(scripted.base_url) as client:
        for event in to_iterator(client.chat_stream(model="m", messages=MESSAGES)):
            assert event.type == "message-start"
            break
        assert scripted.wait_for_request(1).disconnected.wait(5)
        again = list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert again[-1].type == "message-end"


def test_completed_streams_reuse_the_keep_alive_connection(scripted: ScriptedServer) -> None:
    for _ in range(5):
        scripted.enqueue(sse_ok(text_stream("x", "y")))
    with pool1_client(scripted.base_url) as client:
        for _ in range(5):
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert scripted.accepts == 1


# ----------------------------------------------------------------------------- HTTP errors

STATUS_CLASSES = [
    (400, E.BadRequestError),
    (401, E.UnauthorizedError),
    (403, E.ForbiddenError),
    (404, E.NotFoundError),
    (418, E.APIStatusError),
    (422, E.UnprocessableEntityError),
    (429, E.RateLimitError),
    (498, E.InvalidTokenError),
    (499, E.ClientClosedRequestError),
    (500, E.InternalServerError),
    (501, E.NotImplementedServerError),
    (502, E.ServerError),
    (503, E.ServiceUnavailableError),
    (504, E.GatewayTimeoutError),
]


@pytest.mark.parametrize(
    ("status", "cls"), [pytest.param(s, c, id=str(s)) for s, c in STATUS_CLASSES]
)
def test_http_status_errors_are_typed(
    scripted: ScriptedServer, status: int, cls: type[E.APIStatusError]
) -> None:
    scripted.enqueue(
        json_response(status, {"message": f"nope {status}"}, ("x-request-id", "req-42"))
    )
    scripted.enqueue(sse_ok(text_stream("ok")))
    with pool1_client(scripted.base_url, max_retries=0) as client:
        with pytest.raises(cls) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
        # The errored response was closed: the single pooled connection is free again.
        assert list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    error = caught.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.body == {"message": f"nope {status}"}
    assert error.request_id == "req-42"
    assert f"nope {status}" in str(error)


@pytest.mark.parametrize(
    ("body", "ctype", "expected"),
    [
        pytest.param(
            b"<html><h1>Bad gateway</h1></html>",
            "text/html",
            "<html><h1>Bad gateway</h1></html>",
            id="html",
        ),
        pytest.param(b"", "application/json", None, id="empty"),
    ],
)
def test_http_error_bodies_that_are_not_json(
    scripted: ScriptedServer, body: bytes, ctype: str, expected: object
) -> None:
    scripted.enqueue([Headers(502, ctype), Chunk(body), Finish()])
    with Client(KEY, base_url=scripted.base_url, max_retries=0) as client:
        with pytest.raises(E.ServerError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert caught.value.body == expected


def test_error_messages_never_hold_the_key(scripted: ScriptedServer) -> None:
    scripted.enqueue(json_response(401, {"message": f"invalid api token {KEY}"}))
    with Client(KEY, base_url=scripted.base_url) as client:
        with pytest.raises(E.UnauthorizedError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
        assert KEY not in repr(client)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in repr(caught.value.body)


def test_missing_key_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    with pytest.raises(E.MissingAPIKeyError, match="CO_API_KEY"):
        Client()


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch, scripted: ScriptedServer) -> None:
    monkeypatch.setenv("CO_API_KEY", "env-key")
    scripted.enqueue(sse_ok(text_stream("a")))
    with Client(base_url=scripted.base_url) as client:
        list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert scripted.requests[0].headers["authorization"] == "Bearer env-key"


def test_a_200_that_is_not_an_event_stream(scripted: ScriptedServer) -> None:
    scripted.enqueue(json_response(200, {"id": "x", "message": {}}))
    with Client(KEY, base_url=scripted.base_url) as client:
        with pytest.raises(E.NotEventStreamError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert caught.value.content_type == "application/json"
    assert '"id": "x"' in caught.value.body


def test_connection_refused_is_a_connection_error_and_an_httpx_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with Client(KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
        with pytest.raises(E.APIConnectionError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert isinstance(caught.value, httpx.TransportError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# ----------------------------------------------------------------------------- stream errors


def collect_sync(server: ScriptedServer) -> tuple[list[ChatEvent], BaseException | None]:
    events: list[ChatEvent] = []
    with Client(KEY, base_url=server.base_url) as client:
        try:
            for event in to_iterator(client.chat_stream(model="m", messages=MESSAGES)):
                events.append(event)
        except Exception as error:  # the test inspects it
            return events, error
    return events, None


def test_unknown_event_passes_through(scripted: ScriptedServer) -> None:
    events = text_stream("Hi")
    events.insert(3, {"type": "brand-new-event", "payload": {"x": 1}})
    scripted.enqueue(sse_ok(events))
    received, error = collect_sync(scripted)
    assert error is None
    assert [e.type for e in received] == [e["type"] for e in events]
    unknown = received[3]
    assert isinstance(unknown, UnknownEvent)
    assert unknown.data == {"type": "brand-new-event", "payload": {"x": 1}}


def test_malformed_event_is_surfaced_after_the_events_before_it(scripted: ScriptedServer) -> None:
    good = text_stream("Hello", " there")
    scripted.enqueue(
        [
            Headers(),
            *sse_events(good[:3], done=False),
            Chunk(b'event: content-delta\ndata: {"type": "content-delta", "index": 0, \n\n'),
            *sse_events(good[3:]),
            Finish(),
        ]
    )
    received, error = collect_sync(scripted)
    assert [e.type for e in received] == ["message-start", "content-start", "content-delta"]
    assert isinstance(error, E.MalformedEventError)
    assert error.event.event == "content-delta"
    assert error.event.data == '{"type": "content-delta", "index": 0, '
    assert error.partial_message is not None and error.partial_message.text == "Hello"


def test_wrong_shape_is_malformed_with_details(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok([start(), {"type": "content-delta", "index": 0}]))
    received, error = collect_sync(scripted)
    assert [e.type for e in received] == ["message-start"]
    assert isinstance(error, E.MalformedEventError)
    assert "delta" in repr(error.details)


def test_clean_eof_before_message_end_is_truncated(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("Hello", " world")[:4], done=False))
    received, error = collect_sync(scripted)
    assert len(received) == 4
    assert isinstance(error, E.StreamTruncatedError)
    assert error.partial_message is not None
    assert error.partial_message.text == "Hello world"
    assert error.partial_message.usage is None


def test_eof_after_message_end_without_done_is_a_normal_end(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("Hi"), done=False))
    received, error = collect_sync(scripted)
    assert error is None and received[-1].type == "message-end"


def test_finish_reason_error_delivers_message_end_then_a_server_error(
    scripted: ScriptedServer,
) -> None:
    events = [
        *text_stream("partial")[:4],
        end("ERROR", error="the model misbehaved", error_type="INVALID_TOOL_GENERATION"),
    ]
    events[-1]["delta"]["usage"] = {}
    scripted.enqueue(sse_ok(events))
    received, error = collect_sync(scripted)
    assert received[-1].type == "message-end"
    assert isinstance(error, E.ServerStreamError)
    assert error.error == "the model misbehaved"
    assert error.error_type == "INVALID_TOOL_GENERATION"
    assert error.partial_message is not None
    assert error.partial_message.text == "partial"
    assert error.partial_message.finish_reason == "ERROR"


def test_error_event_is_a_server_error(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok([start(), {"type": "error", "message": "overloaded"}]))
    received, error = collect_sync(scripted)
    assert [e.type for e in received] == ["message-start"]
    assert isinstance(error, E.ServerStreamError) and error.error == "overloaded"


@pytest.mark.parametrize(
    "fault", [pytest.param(Close(), id="close"), pytest.param(Reset(), id="reset")]
)
def test_broken_connection_mid_stream_is_interrupted(
    scripted: ScriptedServer, fault: Close | Reset
) -> None:
    events = text_stream("one", " two", " three")
    scripted.enqueue([Headers(), *sse_events(events[:4], done=False), fault])
    received, error = collect_sync(scripted)
    assert len(received) == 4
    assert isinstance(error, E.StreamInterruptedError)
    assert isinstance(error, httpx.TransportError)
    assert isinstance(error.__cause__, httpx.TransportError)
    assert error.partial_message is not None
    assert error.partial_message.text == "one two"
    assert error.partial_message.usage is None
    assert len(scripted.requests) == 1  # never retried after the first event


def test_observable_reports_exactly_one_terminal_signal_with_the_partial_message(
    scripted: ScriptedServer,
) -> None:
    scripted.enqueue(sse_ok(text_stream("cut")[:4], done=False))
    with Client(KEY, base_url=scripted.base_url) as client:
        collector: Collector[ChatEvent] = Collector()
        collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        collector.wait()
    assert collector.terminal_signals == 1
    assert isinstance(collector.error, E.StreamTruncatedError)


def test_exception_in_on_next_reaches_on_error_and_closes_the_response(
    scripted: ScriptedServer,
) -> None:
    class Boom(Exception):
        pass

    scripted.enqueue([Headers(), *sse_events([start()], done=False), Stall()])
    errors: list[Exception] = []
    done = threading.Event()

    def on_next(_: ChatEvent) -> None:
        raise Boom("user code failed")

    def on_error(error: Exception) -> None:
        errors.append(error)
        done.set()

    with Client(KEY, base_url=scripted.base_url) as client:
        client.chat_stream(model="m", messages=MESSAGES).subscribe(on_next, on_error)
        assert done.wait(5)
        assert scripted.wait_for_request(1).disconnected.wait(5)
    assert len(errors) == 1 and type(errors[0]) is Boom


# ----------------------------------------------------------------------------- async


async def acollect(client: AsyncClient) -> tuple[list[ChatEvent], BaseException | None]:
    events: list[ChatEvent] = []
    try:
        async with to_async_iterator(client.chat_stream(model="m", messages=MESSAGES)) as it:
            async for event in it:
                events.append(event)
    except Exception as error:  # the test inspects it
        return events, error
    return events, None


def test_async_stream_from_offline_backend(
    offline: OfflineServer, async_transport: AsyncTransportName
) -> None:
    async def main() -> tuple[list[ChatEvent], str]:
        async with async_client(
            KEY, base_url=offline.base_url, transport=async_transport
        ) as client:
            events, error = await acollect(client)
            assert error is None
            reply = await client.chat(model="m", messages=MESSAGES)
            return events, reply.text

    events, text = asyncio.run(main())
    assert "".join(e.text or "" for e in events if isinstance(e, ContentDeltaEvent)) == text


def test_async_observable_runs_on_the_callers_loop(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(sse_ok(text_stream("a", "b")))

    async def main() -> tuple[list[ChatEvent], set[int]]:
        loop_thread = threading.get_ident()
        threads: set[int] = set()
        done = asyncio.Event()
        items: list[ChatEvent] = []

        def on_next(event: ChatEvent) -> None:
            threads.add(threading.get_ident())
            items.append(event)

        async with async_client(
            KEY, base_url=scripted.base_url, transport=async_transport
        ) as client:
            client.chat_stream(model="m", messages=MESSAGES).subscribe(
                on_next, lambda _: done.set(), done.set
            )
            await asyncio.wait_for(done.wait(), 5)
        assert threads == {loop_thread}
        return items, threads

    items, _ = asyncio.run(main())
    assert [e.type for e in items][-1] == "message-end"


def test_async_dispose_cancels_and_frees_the_connection(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue([Headers(), *sse_events([start()], done=False), Stall()])
    scripted.enqueue(sse_ok(text_stream("again")))

    async def main() -> list[ChatEvent]:
        async with apool1_client(scripted.base_url, async_transport) as client:
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


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        pytest.param(401, E.UnauthorizedError, id="401"),
        pytest.param(503, E.ServiceUnavailableError, id="503"),
    ],
)
def test_async_http_errors(
    scripted: ScriptedServer,
    async_transport: AsyncTransportName,
    status: int,
    cls: type[Exception],
) -> None:
    scripted.enqueue(json_response(status, {"message": "no"}))

    async def main() -> BaseException | None:
        async with async_client(
            KEY, base_url=scripted.base_url, max_retries=0, transport=async_transport
        ) as client:
            return (await acollect(client))[1]

    assert type(asyncio.run(main())) is cls


def test_async_stream_errors_carry_the_partial_message(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(sse_ok(text_stream("Hello", " you")[:4], done=False))
    events = text_stream("x")
    events.insert(2, {"type": "surprise"})
    scripted.enqueue(sse_ok(events))
    scripted.enqueue(
        [
            Headers(),
            *sse_events(text_stream("a", "b")[:3], done=False),
            Chunk(b"data: {nope\n\n"),
            Finish(),
        ]
    )

    async def main() -> list[tuple[list[ChatEvent], BaseException | None]]:
        async with async_client(
            KEY, base_url=scripted.base_url, transport=async_transport
        ) as client:
            return [await acollect(client) for _ in range(3)]

    (truncated, t_error), (with_unknown, u_error), (malformed, m_error) = asyncio.run(main())
    assert isinstance(t_error, E.StreamTruncatedError)
    assert t_error.partial_message is not None and t_error.partial_message.text == "Hello you"
    assert u_error is None and isinstance(with_unknown[2], UnknownEvent)
    assert isinstance(m_error, E.MalformedEventError) and len(malformed) == 3


def test_async_subscribe_without_a_loop_is_a_typed_error(
    async_transport: AsyncTransportName,
) -> None:
    client = async_client(KEY, base_url="http://127.0.0.1:9", transport=async_transport)
    with pytest.raises(streamkit.NoEventLoopError):
        client.chat_stream(model="m", messages=MESSAGES).subscribe(lambda _: None)
    asyncio.run(client.aclose())


# ----------------------------------------------------------------------------- transports


@pytest.mark.parametrize("method", ["chat_stream", "chat"])
def test_the_async_client_takes_the_same_arguments_as_the_sync_one(method: str) -> None:
    def arguments(cls: type[Client | AsyncClient]) -> inspect.Signature:
        signature = inspect.signature(getattr(cls, method))
        return signature.replace(return_annotation=inspect.Signature.empty)

    assert arguments(AsyncClient) == arguments(Client)


def test_a_client_on_a_transport_object_uses_it_and_leaves_it_open(
    scripted: ScriptedServer,
) -> None:
    scripted.enqueue(sse_ok(text_stream("one")), sse_ok(text_stream("two")))
    with httpx.Client() as http:
        transport = HttpxTransport(http)
        outcomes = []
        for _ in range(2):
            with Client(KEY, base_url=scripted.base_url, transport=transport) as client:
                assert client.transport is transport
                outcomes.append(list(to_iterator(client.chat_stream(model="m", messages=MESSAGES))))
        assert not http.is_closed
    assert [events[-1].type for events in outcomes] == ["message-end"] * 2
    assert scripted.accepts == 1  # closing the first client left the connection pooled


def test_an_async_client_on_a_transport_object_uses_it_and_leaves_it_open(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(sse_ok(text_stream("one")), sse_ok(text_stream("two")))

    async def main() -> list[tuple[list[ChatEvent], BaseException | None]]:
        async with httpx.AsyncClient() as http:
            transport: NativeTransport | AsyncHttpxTransport = (
                AsyncHttpxTransport(http)
                if async_transport == "httpx"
                else NativeTransport(parser=parser_of(async_transport))
            )
            outcomes = []
            for _ in range(2):
                async with AsyncClient(
                    KEY, base_url=scripted.base_url, transport=transport
                ) as client:
                    assert client.transport is transport
                    outcomes.append(await acollect(client))
            await transport.aclose()  # the caller's to close
            assert not http.is_closed
            return outcomes

    outcomes = asyncio.run(main())
    assert [(events[-1].type, error) for events, error in outcomes] == [("message-end", None)] * 2
    assert scripted.accepts == 1  # closing the first client left the connection pooled


def test_http_client_and_transport_together_are_refused() -> None:
    with httpx.Client() as http, pytest.raises(ValueError, match="http_client or transport"):
        Client(KEY, http_client=http, transport=HttpxTransport(http))

    async def main() -> None:
        async with httpx.AsyncClient() as http:
            for chosen in ("native", NativeTransport(), AsyncHttpxTransport(http)):
                with pytest.raises(ValueError, match="http_client or transport"):
                    AsyncClient(KEY, http_client=http, transport=chosen)

    asyncio.run(main())


def test_an_unknown_transport_name_is_refused() -> None:
    with pytest.raises(ValueError, match="'httpx', 'native' or a transport"):
        AsyncClient(KEY, transport="h2")  # type: ignore[arg-type]


def test_a_timeout_beside_a_transport_object_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="own timeout"):
        Client(KEY, timeout=3.0, transport=HttpxTransport(timeout=3.0))
    with pytest.raises(ValueError, match="own timeout"):
        AsyncClient(KEY, timeout=3.0, transport=NativeTransport(timeout=3.0))
    AsyncClient(KEY, timeout=3.0, transport="native")  # a name: the timeout is for it
