"""N: nothing lost: every block accounted for, usage absent unless sent, one terminal signal,
one close.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import operators
from streamkit import (
    AsyncClient,
    ChatEvent,
    ChatResponse,
    Client,
    OfflineServer,
    UnknownEvent,
    from_sse_bytes,
    to_async_iterator,
    to_iterator,
)
from streamkit import errors as E
from tests.collect import Collector
from tests.reliability.support import (
    KEY,
    MESSAGES,
    CountingAsyncTransport,
    CountingTransport,
    async_wait_until,
    wait_until,
)
from tests.scripted_server import (
    Chunk,
    Finish,
    Headers,
    Reset,
    ScriptedServer,
    Stall,
    Step,
    json_response,
    sse_events,
)
from tests.test_client import end, sse_ok, text_stream
from tests.transports import (
    AsyncTransportName,
    LedgerNativeTransport,
    connections_in_use,
    parser_of,
)

pytestmark = pytest.mark.timeout(30)


def body_of(events: list[dict[str, Any]], *, done: bool = True) -> bytes:
    return b"".join(s.data for s in sse_events(events, done=done) if isinstance(s, Chunk))


# ----------------------------------------------------------------------------- N1


def with_unknowns(positions: list[int]) -> list[dict[str, Any]]:
    events = text_stream("one", " two", " three")
    for n, position in enumerate(sorted(positions, reverse=True)):
        events.insert(1 + position % (len(events) - 1), {"type": f"novel-{n}", "n": n})
    return events


@settings(max_examples=60, deadline=None)
@given(
    unknowns=st.lists(st.integers(0, 100), max_size=4),
    malformed=st.booleans(),
    meta=st.lists(st.sampled_from([b"id: 1\n\n", b": c\n\n", b"retry: 5\n\n", b"\n"]), max_size=3),
)
def test_n1_every_data_block_is_one_item_or_the_error(
    unknowns: list[int], malformed: bool, meta: list[bytes]
) -> None:
    events = with_unknowns(unknowns)
    blocks = [body_of([e], done=False) for e in events]
    if malformed:
        blocks.insert(len(blocks) - 1, b"data: {cut\n\n")  # before message-end
    blocks[1:1] = meta  # blocks without data are no items
    body = b"".join(blocks) + b"data: [DONE]\n\n"
    # Every block read is an item or the error; a malformed block ends the stream (the
    # documented policy), so the message-end after it is never read.
    data_blocks = len(events)
    items: list[ChatEvent] = []
    errors: list[Exception] = []
    from_sse_bytes(body).subscribe(items.append, errors.append)
    assert len(items) + len(errors) == data_blocks
    assert sum(isinstance(i, UnknownEvent) for i in items) == len(unknowns)
    if malformed:
        (error,) = errors
        assert isinstance(error, E.MalformedEventError) and error.event.data == "{cut"
        assert error.partial_message is not None
        assert error.partial_message.text == "one two three"
    else:
        assert errors == []


def test_n1_over_a_socket_items_equal_blocks_and_the_fold_equals_the_non_streaming_reply(
    offline: OfflineServer,
) -> None:
    with Client(KEY, base_url=offline.base_url) as client:
        stream = client.chat_stream(model="command-a-03-2025", messages=MESSAGES)
        items = list(to_iterator(stream))
        sent = [t for t in offline.requests[-1].sent_events if t != "[DONE]"]
        (final,) = list(to_iterator(stream.pipe(operators.final_message())))
        reply = client.chat(model="command-a-03-2025", messages=MESSAGES)
    assert [e.type for e in items] == sent
    assert final.message == reply.message
    assert final.finish_reason == reply.finish_reason
    assert final.usage == reply.usage


def test_n1_with_unknown_blocks_over_a_socket(scripted: ScriptedServer) -> None:
    events = with_unknowns([0, 3, 5])
    scripted.enqueue(sse_ok(events))
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        items = list(to_iterator(stream.pipe(operators.snapshots())))
    assert len(items) == len(events)  # one snapshot per block, unknowns included
    final = items[-1]
    assert final.text == "one two three"
    assert [u.type for u in final.unknown_events] == ["novel-2", "novel-1", "novel-0"]


# ----------------------------------------------------------------------------- N2 and N3


def error_end() -> dict[str, Any]:
    event = end("ERROR", error="model failed")
    event["delta"]["usage"] = {}
    return event


PREFIX = text_stream("partial", " text")[:4]

PATHS: list[Any] = [
    pytest.param(sse_ok(text_stream("all", " of it")), None, id="complete"),
    pytest.param(sse_ok([*PREFIX, error_end()]), E.ServerStreamError, id="server-error"),
    pytest.param(sse_ok(PREFIX, done=False), E.StreamTruncatedError, id="truncated"),
    pytest.param(sse_ok(PREFIX), E.StreamTruncatedError, id="done-before-end"),
    pytest.param(
        [Headers(), *sse_events(PREFIX, done=False), Reset()],
        E.StreamInterruptedError,
        id="interrupted",
    ),
    pytest.param(
        [Headers(), *sse_events(PREFIX, done=False), Stall()], E.StreamTimeoutError, id="idle"
    ),
    pytest.param(
        [Headers(), *sse_events(PREFIX, done=False), Chunk(b"data: {\n\n"), Finish()],
        E.MalformedEventError,
        id="malformed",
    ),
    pytest.param(json_response(401, {"message": "no"}), E.UnauthorizedError, id="http-401"),
    pytest.param(
        [Headers(200, "text/html"), Chunk(b"<html/>"), Finish()],
        E.NotEventStreamError,
        id="not-sse",
    ),
]


def no_stream_threads() -> bool:
    return not any(t.name == "streamkit-stream" for t in threading.enumerate())


def check_outcome(
    events: list[ChatEvent], error: BaseException | None, expected: type[Exception] | None
) -> None:
    if expected is None:
        assert error is None
        assert events[-1].type == "message-end"
        return
    assert type(error) is expected, repr(error)
    if isinstance(error, E.NotEventStreamError):
        assert error.partial_message is None  # no stream ever started
    elif isinstance(error, E.StreamError):
        partial = error.partial_message
        assert partial is not None
        assert partial.text == "partial text"
        if expected is E.ServerStreamError:
            # message-end came, with "usage": {}: present but empty, never zeros.
            assert partial.usage is not None
            assert partial.usage.billed_units is None and partial.usage.tokens is None
        else:
            assert partial.usage is None  # N2: absent, never zero-filled
            assert partial.finish_reason is None


@pytest.mark.parametrize(("script", "expected"), PATHS)
def test_n2_n3_observable_one_terminal_signal_and_one_close(
    scripted: ScriptedServer, script: list[Step], expected: type[Exception] | None
) -> None:
    scripted.enqueue(script)
    transport = CountingTransport()
    with httpx.Client(transport=transport) as http:
        client = Client(KEY, base_url=scripted.base_url, http_client=http, idle_timeout=0.2)
        collector: Collector[ChatEvent] = Collector()
        collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        collector.wait()
        # The reader thread has ended: no later signal can come.
        assert wait_until(no_stream_threads)
    assert collector.terminal_signals == 1
    assert collector.completed == (expected is None)
    check_outcome(collector.items, collector.error, expected)
    assert transport.requests == len(scripted.requests) == 1
    assert transport.closes == 1


@pytest.mark.parametrize(("script", "expected"), PATHS)
def test_n2_n3_iterator_one_end_and_one_close(
    scripted: ScriptedServer, script: list[Step], expected: type[Exception] | None
) -> None:
    scripted.enqueue(script)
    transport = CountingTransport()
    events: list[ChatEvent] = []
    error: BaseException | None = None
    with httpx.Client(transport=transport) as http:
        client = Client(KEY, base_url=scripted.base_url, http_client=http, idle_timeout=0.2)
        iterator = to_iterator(client.chat_stream(model="m", messages=MESSAGES))
        try:
            for event in iterator:
                events.append(event)
        except Exception as caught:  # inspected below
            error = caught
        assert list(iterator) == []  # ended once: no second error, no more items
        assert transport.closes == 1
    check_outcome(events, error, expected)


@pytest.mark.parametrize(("script", "expected"), PATHS)
def test_n2_n3_async_one_end_and_one_close(
    scripted: ScriptedServer,
    async_transport: AsyncTransportName,
    script: list[Step],
    expected: type[Exception] | None,
) -> None:
    # "One close": on httpx a counting transport sees each response closed once; on the
    # native transport a ledger sees the connection closed or back in the pool.
    scripted.enqueue(script)
    counting = CountingAsyncTransport()
    native = LedgerNativeTransport(
        parser="h11" if async_transport == "httpx" else parser_of(async_transport)
    )

    async def main() -> tuple[list[ChatEvent], BaseException | None, list[Any]]:
        async with httpx.AsyncClient(transport=counting) as http:
            if async_transport != "httpx":
                client = AsyncClient(
                    KEY, base_url=scripted.base_url, idle_timeout=0.2, transport=native
                )
            else:
                client = AsyncClient(
                    KEY, base_url=scripted.base_url, idle_timeout=0.2, http_client=http
                )
            events: list[ChatEvent] = []
            error: BaseException | None = None
            iterator = to_async_iterator(client.chat_stream(model="m", messages=MESSAGES))
            try:
                async with iterator:
                    async for event in iterator:
                        events.append(event)
            except Exception as caught:  # inspected below
                error = caught
            assert [e async for e in iterator] == []
            assert connections_in_use(client) == 0
            # The Observable path too: exactly one terminal signal.
            scripted.enqueue(script)
            signals: list[Any] = []
            client.chat_stream(model="m", messages=MESSAGES).subscribe(
                lambda _: None, signals.append, lambda: signals.append("completed")
            )
            assert await async_wait_until(lambda: signals != [])
            assert connections_in_use(client) == 0
            await asyncio.sleep(0.05)
            await native.aclose()
            return events, error, signals

    events, error, signals = asyncio.run(main())
    check_outcome(events, error, expected)
    assert len(signals) == 1
    assert (signals[0] == "completed") == (expected is None)
    assert len(scripted.requests) == 2
    if async_transport == "httpx":
        assert counting.requests == counting.closes == 2


def test_n3_cancelled_and_user_exception_paths(scripted: ScriptedServer) -> None:
    stalled = [Headers(), *sse_events(PREFIX, done=False), Stall()]
    scripted.enqueue(stalled, stalled)
    transport = CountingTransport()
    with httpx.Client(transport=transport) as http:
        client = Client(KEY, base_url=scripted.base_url, http_client=http)
        # Cancelled: disposal ends the subscription with no signal at all (the Rx contract:
        # the disposer asked for silence); the response is closed once.
        collector: Collector[ChatEvent] = Collector()
        subscription = collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        assert wait_until(lambda: len(collector.items) == 4)
        subscription.dispose()
        assert scripted.wait_for_request(1).disconnected.wait(5)
        assert wait_until(lambda: transport.closes == 1)
        assert collector.terminal_signals == 0
        # A user exception in on_next: exactly one on_error, with that exception.
        boom = ValueError("user")
        errors: list[Exception] = []

        def on_next(_: ChatEvent) -> None:
            raise boom

        client.chat_stream(model="m", messages=MESSAGES).subscribe(on_next, errors.append)
        assert scripted.wait_for_request(2).disconnected.wait(5)
        assert wait_until(no_stream_threads)
    assert errors == [boom]
    assert transport.requests == transport.closes == 2


def test_n2_usage_is_kept_exactly_when_message_end_came(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("x")))
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        (final,) = list(to_iterator(stream.pipe(operators.final_message())))
    assert isinstance(final, ChatResponse)
    assert final.usage is not None and final.usage.billed_units is not None
    assert final.usage.billed_units.output_tokens == 2
    assert json.loads(final.model_dump_json())["usage"]["tokens"]["input_tokens"] == 50
