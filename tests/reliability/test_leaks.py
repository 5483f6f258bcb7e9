"""L: no leaks under load: connections reused, nothing left behind, bounded memory, limits.

The leak tests run on a pool of one connection with the garbage collector disabled, so a
reference cycle or an unclosed response shows up at once (a PoolTimeout, or on the native
transport its ledger's failed connect; a live object).
Timings are not asserted here: they live in ``benchmarks/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import threading
import tracemalloc
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streamkit import (
    AsyncClient,
    ChatEvent,
    ChatStream,
    Client,
    from_sse_bytes,
    to_async_iterator,
    to_iterator,
)
from streamkit import errors as E
from tests.reliability.support import (
    KEY,
    MESSAGES,
    MODES,
    acollect,
    apool1_client,
    async_wait_until,
    collect,
    open_sockets,
    pooled_connections,
    run_stream,
    wait_until,
)
from tests.scripted_server import (
    Chunk,
    Finish,
    Headers,
    Push,
    RecordedRequest,
    ScriptedServer,
    Sleep,
    Stall,
    Step,
    Wait,
    sse_events,
)
from tests.test_client import delta, pool1_client, sse_ok, start, text_stream
from tests.transports import AsyncTransportName, async_client

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def stream_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("streamkit-stream"))


# ----------------------------------------------------------------------------- L1


def test_l1_a_thousand_sequential_streams_reuse_one_keep_alive_connection() -> None:
    with ScriptedServer(default=sse_ok(text_stream("a", "b", "c"))) as server:
        with gc_disabled(), pool1_client(server.base_url) as client:
            for _ in range(1000):
                events, error = collect(client)
                assert error is None and len(events) == 7
        assert len(server.requests) == 1000
        assert server.accepts == 1  # <= the pool size: every body was read to its end


def test_l1_async_a_thousand_sequential_streams_reuse_one_connection(
    async_transport: AsyncTransportName,
) -> None:
    with ScriptedServer(default=sse_ok(text_stream("a", "b", "c"))) as server:

        async def main() -> None:
            async with apool1_client(server.base_url, async_transport) as client:
                for _ in range(1000):
                    events, error = await acollect(client)
                    assert error is None and len(events) == 7

        with gc_disabled():
            asyncio.run(main())
        assert len(server.requests) == 1000
        assert server.accepts == 1


EVENTS_BEFORE_STALL = 8


def endless(_: RecordedRequest) -> list[Step]:
    """Eight events, then silence until the client hangs up."""
    events = [start(), *text_stream(*(f" w{i}" for i in range(8)))[1:]][:EVENTS_BEFORE_STALL]
    return [Headers(), *sse_events(events, done=False), Stall()]


def test_l1_a_thousand_streams_cancelled_at_a_random_event_leave_nothing_behind() -> None:
    rng = random.Random(1000)
    sockets_before = open_sockets()
    threads_before = threading.active_count()
    with ScriptedServer(default=endless) as server:
        listener_sockets = open_sockets() - sockets_before
        with gc_disabled(), pool1_client(server.base_url) as client:
            for i in range(1000):
                stop_at = rng.randint(1, EVENTS_BEFORE_STALL)
                stream = client.chat_stream(model="m", messages=MESSAGES)
                if i % 2 == 0:  # break out of a for loop
                    for count, _ in enumerate(to_iterator(stream), 1):
                        if count == stop_at:
                            break
                else:  # dispose an Observable subscription (a reader thread)
                    got = threading.Event()
                    seen: list[ChatEvent] = []

                    def on_next(
                        event: ChatEvent,
                        seen: list[ChatEvent] = seen,
                        got: threading.Event = got,
                        stop_at: int = stop_at,
                    ) -> None:
                        seen.append(event)
                        if len(seen) == stop_at:
                            got.set()

                    subscription = stream.subscribe(on_next)
                    assert got.wait(5)
                    subscription.dispose()
            assert wait_until(lambda: stream_threads() == 0, 10)
            server.wait_idle()  # the server saw every client hang up
            assert len(server.requests) == 1000
            # The client holds no socket (each cancelled connection was closed, not
            # pooled), and its pool of one still works.
            assert open_sockets() - sockets_before == listener_sockets
    # No stream thread, bridge thread or server connection thread lives on.
    assert wait_until(lambda: threading.active_count() <= threads_before)


def reached(seen: list[Any], count: int) -> Any:
    return lambda: len(seen) >= count


def test_l1_async_a_thousand_streams_cancelled_at_a_random_event_leave_nothing_behind(
    async_transport: AsyncTransportName,
) -> None:
    rng = random.Random(2000)
    sockets_before = open_sockets()
    with ScriptedServer(default=endless) as server:
        listener_sockets = open_sockets() - sockets_before

        async def main() -> None:
            async with apool1_client(server.base_url, async_transport) as client:
                for i in range(1000):
                    stop_at = rng.randint(1, EVENTS_BEFORE_STALL)
                    stream = client.chat_stream(model="m", messages=MESSAGES)
                    if i % 2 == 0:  # break inside async with
                        async with to_async_iterator(stream) as it:
                            count = 0
                            async for _ in it:
                                count += 1
                                if count == stop_at:
                                    break
                    else:  # cancel the consuming task
                        seen: list[ChatEvent] = []

                        async def consume(stream: Any = stream, seen: list[Any] = seen) -> None:
                            async with to_async_iterator(stream) as it:
                                async for event in it:
                                    seen.append(event)

                        task = asyncio.create_task(consume())
                        assert await async_wait_until(reached(seen, stop_at))
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                assert asyncio.all_tasks() == {asyncio.current_task()}
                assert pooled_connections(client) == 0
            await asyncio.get_running_loop().run_in_executor(None, server.wait_idle)

        with gc_disabled():
            asyncio.run(main())
        assert len(server.requests) == 1000
        assert open_sockets() - sockets_before == listener_sockets


def test_l1_two_hundred_broken_streams_raise_no_resource_warning() -> None:
    # filterwarnings = error turns any ResourceWarning (an unclosed socket or transport)
    # into a failure; here it is also collected explicitly.
    with ScriptedServer(default=endless) as server:
        with warnings.catch_warnings(record=True) as caught, gc_disabled():
            warnings.simplefilter("always")
            with pool1_client(server.base_url) as client:
                for _ in range(200):
                    for count, _ in enumerate(
                        to_iterator(client.chat_stream(model="m", messages=MESSAGES)), 1
                    ):
                        if count == 2:
                            break
            gc.collect()
        server.wait_idle()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


# ----------------------------------------------------------------------------- L2


def test_l2_stream_objects_die_by_reference_counting_alone(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("a")), stalled_script(), sse_ok(text_stream("b")))
    with gc_disabled(), Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        iterator = to_iterator(stream)
        assert list(iterator)[-1].type == "message-end"
        refs: list[weakref.ref[Any]] = [weakref.ref(stream), weakref.ref(iterator)]
        del stream, iterator
        assert [r() for r in refs] == [None, None]
        # Broken off mid-stream:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        iterator = to_iterator(stream)
        next(iterator)
        refs = [weakref.ref(stream), weakref.ref(iterator)]
        del stream, iterator
        assert [r() for r in refs] == [None, None]
        assert scripted.wait_for_request(2).disconnected.wait(5)
        # A completed Observable subscription:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        done = threading.Event()
        subscription = stream.subscribe(on_completed=done.set)
        assert done.wait(5)
        assert wait_until(lambda: stream_threads() == 0)
        refs = [weakref.ref(stream), weakref.ref(subscription)]
        del stream, subscription
        assert [r() for r in refs] == [None, None]


def test_l2_async_stream_objects_die_by_reference_counting_alone(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(sse_ok(text_stream("a")), stalled_script())

    async def main() -> None:
        async with async_client(
            KEY, base_url=scripted.base_url, transport=async_transport
        ) as client:
            stream = client.chat_stream(model="m", messages=MESSAGES)
            async with to_async_iterator(stream) as it:
                events = [e async for e in it]
            assert events[-1].type == "message-end"
            refs: list[weakref.ref[Any]] = [weakref.ref(stream), weakref.ref(it)]
            del stream, it
            assert [r() for r in refs] == [None, None]
            stream = client.chat_stream(model="m", messages=MESSAGES)
            async with to_async_iterator(stream) as it:
                async for _ in it:
                    break
            refs = [weakref.ref(stream), weakref.ref(it)]
            del stream, it
            assert [r() for r in refs] == [None, None]

    with gc_disabled():
        asyncio.run(main())


def test_l2_a_client_dies_by_reference_counting_alone(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("a")))
    with gc_disabled():
        client = Client(KEY, base_url=scripted.base_url)
        assert list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
        client.close()
        ref = weakref.ref(client)
        del client
        assert ref() is None


def stalled_script() -> list[Step]:
    return [Headers(), *sse_events(text_stream("x")[:2], done=False), Stall()]


# ----------------------------------------------------------------------------- L3

MIB = 1024 * 1024


def body_of(events: list[dict[str, Any]], *, done: bool = True) -> bytes:
    return b"".join(s.data for s in sse_events(events, done=done) if isinstance(s, Chunk))


def chunked(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    view = memoryview(body)
    for i in range(0, len(body), size):
        yield bytes(view[i : i + size])


def peak_while(run: Any) -> int:
    """The peak of Python allocations (bytes) while ``run()`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_l3_a_16_mib_event_costs_a_small_multiple_of_its_size() -> None:
    size = 16 * MIB
    events = text_stream("x" * size)
    body = body_of(events)
    received: list[int] = []

    def run() -> None:
        stream = from_sse_bytes(chunked(body), max_event_size=size + 4096)
        for event in to_iterator(stream):
            received.append(len(getattr(event, "text", None) or ""))

    peak = peak_while(run)
    assert size in received
    # The documented bound: under 4 times the event (measured: 2x, the data buffer and the
    # decoded text the event and the partial message share); linear in the event.
    assert peak < 4 * size, f"{peak / MIB:.1f} MiB for a 16 MiB event"


def test_l3_eighty_thousand_events_are_not_retained() -> None:
    # 80,000 events that the partial message does not keep (debug events): the decoder
    # holds none of them once delivered.
    debug = [{"type": "debug", "prompt": "p" * 200} for _ in range(80_000)]
    body = body_of([start(), *debug, *text_stream("end")[1:]])
    count = 0

    def run() -> None:
        nonlocal count
        for _ in to_iterator(from_sse_bytes(chunked(body))):
            count += 1

    peak = peak_while(run)
    assert count == 80_000 + 5
    assert len(body) > 16 * MIB
    assert peak < 2 * MIB, f"{peak / MIB:.1f} MiB held for a {len(body) / MIB:.0f} MiB stream"


def test_l3_twenty_thousand_deltas_cost_the_text_not_the_events() -> None:
    # The partial message keeps the reply's text (it rides on every error), so memory grows
    # with the text; the event objects themselves are not kept.
    pieces = [f" w{i % 1000:03d}" for i in range(20_000)]
    body = body_of(text_stream(*pieces))
    text_size = sum(len(p) for p in pieces)
    texts: list[str] = []

    def run() -> None:
        for event in to_iterator(from_sse_bytes(chunked(body))):
            if event.type == "message-end":
                texts.append("done")

    peak = peak_while(run)
    assert texts == ["done"]
    # Each delta keeps one small str (~55 bytes + its text) until the next snapshot joins
    # them; keeping the events (~1 KiB of objects each) would cost 20 MB.
    assert peak < 20 * text_size, f"{peak / MIB:.1f} MiB for {text_size / MIB:.1f} MiB of text"


def test_l3_no_growth_across_a_hundred_streams() -> None:
    with ScriptedServer(default=sse_ok(text_stream(*(" piece" for _ in range(50))))) as server:
        with Client(KEY, base_url=server.base_url) as client:

            def client_memory() -> int:
                gc.collect()
                snapshot = tracemalloc.take_snapshot().filter_traces(
                    [
                        # The loopback server records every request in this process.
                        tracemalloc.Filter(False, "*/tests/scripted_server.py"),
                        tracemalloc.Filter(False, "*/threading.py"),
                        tracemalloc.Filter(False, tracemalloc.__file__),
                    ]
                )
                return sum(stat.size for stat in snapshot.statistics("filename"))

            tracemalloc.start()
            try:
                for _ in range(10):
                    assert collect(client)[1] is None
                warm = client_memory()
                for _ in range(100):
                    assert collect(client)[1] is None
                after = client_memory()
            finally:
                tracemalloc.stop()
    assert after - warm < 64 * 1024, f"grew by {(after - warm) / 1024:.0f} KiB in 100 streams"


# ----------------------------------------------------------------------------- L4

LIMIT = 64 * 1024


def oversized(kind: str, factor: float) -> list[Step]:
    """message-start, one event or line ``factor`` times the limit, then the rest behind a
    gate that never opens (a client that kept reading would hang, not fail)."""
    size = int(LIMIT * factor)
    if kind == "event":
        # Many short data lines: no line is long, the event is.
        payload = json.dumps(delta("y" * 100))
        lines = b"event: content-delta\n" + b"".join(
            b"data: " + payload.encode() + b"\n" for _ in range(size // (len(payload) + 7))
        )
        big = Chunk(lines)
    else:
        big = Chunk(b'data: {"type": "debug", "prompt": "' + b"z" * size + b'"}\n')
    events = text_stream("under")
    return [
        Headers(),
        *sse_events(events[:1], done=False),
        big,
        Wait(threading.Event()),
        *sse_events(events[1:]),
        Finish(),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("kind", "cls", "option"),
    [
        pytest.param("line", E.LineTooLargeError, "max_line_size", id="line"),
        pytest.param("event", E.EventTooLargeError, "max_event_size", id="event"),
    ],
)
def test_l4_twice_the_limit_is_a_typed_error_without_reading_the_rest(
    scripted: ScriptedServer, mode: str, kind: str, cls: type[E.ProtocolError], option: str
) -> None:
    scripted.enqueue(oversized(kind, 2.0))
    options: dict[str, Any] = {option: LIMIT}
    events, error = run_stream(mode, scripted.base_url, **options)
    assert [e.type for e in events] == ["message-start"]
    assert type(error) is cls
    assert isinstance(error, E.ProtocolError)
    assert error.limit == LIMIT  # type: ignore[attr-defined]
    assert LIMIT < error.size <= 2 * LIMIT + 1024  # type: ignore[attr-defined]
    assert error.partial_message is not None and error.partial_message.id == "m-1"
    # The client hung up at once instead of reading on (the gate never opened).
    assert scripted.wait_for_request(1).disconnected.wait(5)
    assert len(scripted.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["line", "event"])
def test_l4_just_under_the_limit_is_parsed(scripted: ScriptedServer, mode: str, kind: str) -> None:
    events = text_stream("under")
    if kind == "line":
        prompt = "z" * (LIMIT - len('data: {"type": "debug", "prompt": ""}') - 1)
        big = Chunk(f'data: {{"type": "debug", "prompt": "{prompt}"}}\n\n'.encode())
        option = "max_line_size"
    else:
        prompt = "z" * (LIMIT - len('{"type": "debug", "prompt": ""}'))
        big = Chunk(f'data: {{"type": "debug", "prompt": "{prompt}"}}\n\n'.encode())
        option = "max_event_size"
    scripted.enqueue([Headers(), *sse_events(events[:1], done=False), big, *sse_events(events[1:])])
    options: dict[str, Any] = {option: LIMIT}
    received, error = run_stream(mode, scripted.base_url, **options)
    assert error is None
    assert received[1].type == "debug"
    assert received[-1].type == "message-end"


def test_l4_an_endless_line_is_cut_off_after_the_limit_not_after_the_stream(
    scripted: ScriptedServer,
) -> None:
    # 100 MB in one line that never ends, 16 KiB at a time: the client must stop at the
    # limit; the server is left with most of it unsent.
    total = 100 * MIB
    scripted.enqueue([Headers(), Chunk(b"data: "), Push(b"x" * 16384, total // 16384), Stall()])
    _, error = run_stream("iterator", scripted.base_url, max_line_size=LIMIT)
    assert isinstance(error, E.LineTooLargeError)
    served = scripted.wait_for_request(1)
    assert served.disconnected.wait(5)
    assert served.bytes_sent < total // 4


# ----------------------------------------------------------------------------- L5


def tagged(request: RecordedRequest) -> list[Step]:
    """Answer with the tag the request carries: any cross-talk shows in the text."""
    tag = request.json()["messages"][0]["content"]
    rng = random.Random(tag)
    events = text_stream(*(f" {tag}:{i}" for i in range(5)))
    events[0]["id"] = tag
    steps: list[Step] = [Headers()]
    for step in sse_events(events):
        steps.append(step)
        steps.append(Sleep(rng.random() * 0.003))  # interleave the streams
    steps.append(Finish())
    return steps


def expected_text(tag: str) -> str:
    return "".join(f" {tag}:{i}" for i in range(5))


def test_l5_fifty_concurrent_async_streams_on_ten_connections() -> None:
    # httpx only: the subject is httpx's connection limit. The native transport has no cap;
    # its concurrent streams are tests/test_native_transport.py's.
    with ScriptedServer(default=tagged) as server:

        async def one(client: AsyncClient, tag: str) -> tuple[str, list[ChatEvent], Any]:
            messages = [{"role": "user", "content": tag}]
            events: list[ChatEvent] = []
            async with to_async_iterator(client.chat_stream(model="m", messages=messages)) as it:
                async for event in it:
                    events.append(event)
            return tag, events, None

        async def main() -> list[tuple[str, list[ChatEvent], Any]]:
            limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
            async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10.0)) as http:
                client = AsyncClient(KEY, base_url=server.base_url, http_client=http)
                results = await asyncio.gather(*(one(client, f"t{i:02d}") for i in range(50)))
                pool = http._transport._pool  # type: ignore[attr-defined]
                assert len(pool.connections) <= 10
                assert all(c.is_idle() for c in pool.connections)  # fully released
                assert asyncio.all_tasks() == {asyncio.current_task()}
                return results

        results = asyncio.run(main())
        assert server.accepts <= 10
    assert len(results) == 50
    for tag, events, _ in results:
        assert events[0].id == tag  # type: ignore[union-attr]
        text = "".join(getattr(e, "text", None) or "" for e in events)
        assert text == expected_text(tag)
        assert events[-1].type == "message-end"


def test_l5_fifty_concurrent_observable_streams_on_ten_connections() -> None:
    with ScriptedServer(default=tagged) as server:
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        with httpx.Client(limits=limits, timeout=httpx.Timeout(10.0)) as http:
            client = Client(KEY, base_url=server.base_url, http_client=http)
            results: dict[str, list[ChatEvent]] = {}
            errors: list[Exception] = []
            done = threading.Semaphore(0)

            def on_error(error: Exception) -> None:
                errors.append(error)
                done.release()

            for i in range(50):
                tag = f"t{i:02d}"
                results[tag] = []
                messages = [{"role": "user", "content": tag}]
                client.chat_stream(model="m", messages=messages).subscribe(
                    results[tag].append, on_error, done.release
                )
            for _ in range(50):
                assert done.acquire(timeout=20)
            assert errors == []
            assert wait_until(lambda: stream_threads() == 0)
            pool = http._transport._pool  # type: ignore[attr-defined]
            assert len(pool.connections) <= 10
            assert all(c.is_idle() for c in pool.connections)
        assert server.accepts <= 10
    for tag, events in results.items():
        text = "".join(getattr(e, "text", None) or "" for e in events)
        assert text == expected_text(tag)


def test_l5_a_client_stream_object_is_reusable_concurrently() -> None:
    # One cold ChatStream, subscribed five times at once: five independent requests.
    with ScriptedServer(default=tagged) as server:
        with Client(KEY, base_url=server.base_url) as client:
            stream: ChatStream = client.chat_stream(
                model="m", messages=[{"role": "user", "content": "same"}]
            )
            outcomes: list[list[ChatEvent]] = [[] for _ in range(5)]
            finished = threading.Semaphore(0)
            for bucket in outcomes:
                stream.subscribe(bucket.append, on_completed=finished.release)
            for _ in range(5):
                assert finished.acquire(timeout=10)
        assert len(server.requests) == 5
    for bucket in outcomes:
        assert "".join(getattr(e, "text", None) or "" for e in bucket) == expected_text("same")
