"""C: cancellation and early stop close the connection and return it to the pool.

"The server saw the disconnect" is always waited for on an Event, and the pool of one
connection (F4) turns any leak into a PoolTimeout on the next request (on the native
transport, whose pool has no cap, its ledger fails the next connect instead). The async
tests run over both asyncio transports (the ``async_transport`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from reactivex import operators as ops

from streamkit import AsyncClient, ChatEvent, Client, to_async_iterator, to_iterator
from streamkit import errors as E
from tests.collect import Collector
from tests.reliability.support import (
    KEY,
    MESSAGES,
    acollect,
    apool1_client,
    async_wait_until,
    collect,
    pooled_connections,
    wait_until,
)
from tests.scripted_server import (
    Finish,
    Headers,
    Push,
    ScriptedServer,
    Stall,
    Wait,
    json_response,
    sse_events,
)
from tests.test_client import pool1_client, sse_ok, text_stream
from tests.transports import AsyncTransportName, async_client, connections_in_use

pytestmark = pytest.mark.timeout(30)


def stalled(events: int = 3) -> list[Any]:
    """A few events, then nothing until the client hangs up."""
    return [Headers(), *sse_events(text_stream("a", "b", "c")[:events], done=False), Stall()]


def stream_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("streamkit-")}


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    """Only reference counting frees objects: a reference cycle would show up as a leak."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- C1


def test_c1_break_out_of_a_for_loop_closes_the_request(scripted: ScriptedServer) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))
    with gc_disabled(), pool1_client(scripted.base_url) as client:
        for event in to_iterator(client.chat_stream(model="m", messages=MESSAGES)):
            assert event.type == "message-start"
            break
        assert scripted.wait_for_request(1).disconnected.wait(5)
        events, error = collect(client)
    assert error is None and events[-1].type == "message-end"


def event_type(event: ChatEvent) -> str:
    return event.type


def test_c1_break_out_of_a_bridged_pipeline_closes_the_request(scripted: ScriptedServer) -> None:
    # A pipeline is no ChatStream: to_iterator bridges it through a bounded buffer.
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))
    before = stream_threads()
    with gc_disabled(), pool1_client(scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES).pipe(ops.map(event_type))
        for kind in to_iterator(stream):
            assert kind == "message-start"
            break
        assert scripted.wait_for_request(1).disconnected.wait(5)
        events, error = collect(client)
    assert error is None and events[-1].type == "message-end"
    assert wait_until(lambda: stream_threads() <= before)


def test_c1_closing_the_iterator_explicitly(scripted: ScriptedServer) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))
    with pool1_client(scripted.base_url) as client:
        iterator = to_iterator(client.chat_stream(model="m", messages=MESSAGES))
        assert next(iterator).type == "message-start"
        iterator.close()
        assert scripted.wait_for_request(1).disconnected.wait(5)
        assert list(iterator) == []  # closed: nothing more, and no error
        events, error = collect(client)
    assert error is None and events[-1].type == "message-end"


# ----------------------------------------------------------------------------- C2


def test_c2_dispose_from_another_thread_mid_stream(scripted: ScriptedServer) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))
    before = stream_threads()
    with pool1_client(scripted.base_url) as client:
        collector: Collector[ChatEvent] = Collector()
        subscription = collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        assert wait_until(lambda: len(collector.items) == 3)
        disposer = threading.Thread(target=subscription.dispose)
        disposer.start()
        disposer.join(5)
        assert scripted.wait_for_request(1).disconnected.wait(5)
        assert wait_until(lambda: stream_threads() <= before), "the producer thread lives on"
        # No further signal of any kind after disposal.
        assert len(collector.items) == 3
        assert collector.error is None and not collector.completed
        events, error = collect(client)
    assert error is None and events[-1].type == "message-end"


def test_c2_dispose_while_the_observer_is_busy_stops_further_items(
    scripted: ScriptedServer,
) -> None:
    # The whole reply is already in the socket; the observer is busy with the first event
    # when the subscription is disposed: nothing more may reach it.
    scripted.enqueue(sse_ok(text_stream("a", "b", "c", "d")))
    busy, release = threading.Event(), threading.Event()
    seen: list[Any] = []

    def on_next(event: ChatEvent) -> None:
        seen.append(event)
        busy.set()
        release.wait(5)

    before = stream_threads()
    with Client(KEY, base_url=scripted.base_url) as client:
        subscription = client.chat_stream(model="m", messages=MESSAGES).subscribe(
            on_next, seen.append, lambda: seen.append("completed")
        )
        assert busy.wait(5)
        subscription.dispose()
        release.set()
        assert wait_until(lambda: stream_threads() <= before)
    assert len(seen) == 1


def test_c2_dispose_is_idempotent_and_safe_after_completion(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("done")))
    with Client(KEY, base_url=scripted.base_url) as client:
        collector: Collector[ChatEvent] = Collector()
        subscription = collector.subscribe(client.chat_stream(model="m", messages=MESSAGES))
        collector.wait()
        subscription.dispose()
        subscription.dispose()
    assert collector.completed and collector.terminal_signals == 1


# ----------------------------------------------------------------------------- C3


def no_task_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """asyncio reports "Task was destroyed but it is pending!" and the like on its logger."""
    problems = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio" and r.levelno >= logging.WARNING
    ]
    assert problems == []


def test_c3_task_cancel_while_awaiting_the_next_event(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))

    async def main() -> tuple[list[ChatEvent], Any]:
        seen: list[ChatEvent] = []
        async with apool1_client(scripted.base_url, async_transport) as client:

            async def consume() -> None:
                async with to_async_iterator(
                    client.chat_stream(model="m", messages=MESSAGES)
                ) as it:
                    async for event in it:
                        seen.append(event)

            task = asyncio.create_task(consume())
            assert await async_wait_until(lambda: len(seen) == 3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            served = scripted.wait_for_request(1)
            assert await async_wait_until(served.disconnected.is_set)
            return seen, await acollect(client)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        seen, (events, error) = asyncio.run(main())
    assert len(seen) == 3
    assert error is None and events[-1].type == "message-end"
    no_task_warnings(caplog)


def test_c3_task_cancel_while_sleeping_in_a_retry_backoff(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(json_response(503, {"message": "busy"}, ("retry-after", "30")))
    scripted.enqueue(sse_ok(text_stream("next")))

    async def main() -> tuple[BaseException | None, Any]:
        async with apool1_client(scripted.base_url, async_transport) as client:
            task = asyncio.create_task(acollect(client))
            await asyncio.get_running_loop().run_in_executor(None, scripted.wait_for_request, 1)
            await asyncio.sleep(0.05)  # now in the 30 s backoff
            task.cancel()
            caught: BaseException | None = None
            try:
                await task
            except BaseException as error:  # the test inspects it
                caught = error
            return caught, await acollect(client)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        caught, (events, error) = asyncio.run(main())
    assert type(caught) is asyncio.CancelledError  # not wrapped, not swallowed
    assert error is None and events[-1].type == "message-end"
    assert len(scripted.requests) == 2  # the cancelled backoff never retried
    no_task_warnings(caplog)


def test_c3_cancel_the_task_that_subscribed_an_async_observable(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))

    async def main() -> tuple[list[Any], Any]:
        seen: list[Any] = []
        async with apool1_client(scripted.base_url, async_transport) as client:
            subscription = client.chat_stream(model="m", messages=MESSAGES).subscribe(
                seen.append, seen.append, lambda: seen.append("completed")
            )
            assert await async_wait_until(lambda: len(seen) == 3)
            subscription.dispose()
            served = scripted.wait_for_request(1)
            assert await async_wait_until(served.disconnected.is_set)
            await asyncio.sleep(0)  # let the cancelled task finish
            return seen, await acollect(client)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        seen, (events, error) = asyncio.run(main())
    assert len(seen) == 3  # no error, no completion after disposal
    assert error is None and events[-1].type == "message-end"
    no_task_warnings(caplog)


# ----------------------------------------------------------------------------- C4


@pytest.mark.parametrize("how", ["wait_for", "timeout"])
@pytest.mark.parametrize("context", ["async-with", "bare"])
def test_c4_asyncio_timeout_around_a_stalled_stream(
    scripted: ScriptedServer, async_transport: AsyncTransportName, how: str, context: str
) -> None:
    if how == "timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is new in Python 3.11")
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))

    async def drain(client: AsyncClient) -> None:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        if context == "async-with":
            async with to_async_iterator(stream) as it:
                async for _ in it:
                    pass
        else:
            async for _ in to_async_iterator(stream):
                pass

    async def main() -> Any:
        async with apool1_client(scripted.base_url, async_transport) as client:
            with pytest.raises(TimeoutError):
                if how == "wait_for":
                    await asyncio.wait_for(drain(client), 0.3)
                elif sys.version_info >= (3, 11):
                    async with asyncio.timeout(0.3):
                        await drain(client)
            # The cancelled read closed the response even without async with: the
            # CancelledError passed through the iterator, which closes on any exception.
            served = scripted.wait_for_request(1)
            assert await async_wait_until(served.disconnected.is_set)
            return await acollect(client)

    events, error = asyncio.run(main())
    assert error is None and events[-1].type == "message-end"


# ----------------------------------------------------------------------------- C5


def test_c5_async_with_closes_at_once_on_break(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))

    async def main() -> Any:
        async with apool1_client(scripted.base_url, async_transport) as client:
            async with to_async_iterator(client.chat_stream(model="m", messages=MESSAGES)) as it:
                async for _ in it:
                    break
            # Closed before async with returned: the connection is back in the pool.
            assert pooled_connections(client) == 0
            assert await async_wait_until(scripted.wait_for_request(1).disconnected.is_set)
            return await acollect(client)

    with gc_disabled():
        events, error = asyncio.run(main())
    assert error is None and events[-1].type == "message-end"


def test_c5_bare_async_for_break_closes_when_the_iterator_is_dropped(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    # No reference kept: the iterator dies with the loop, and asyncio's async-generator
    # finaliser closes the request on the loop soon after (reference counting alone
    # suffices: no cycle keeps it alive).
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))

    async def main() -> Any:
        async with apool1_client(scripted.base_url, async_transport) as client:
            async for _ in to_async_iterator(client.chat_stream(model="m", messages=MESSAGES)):
                break
            assert await async_wait_until(scripted.wait_for_request(1).disconnected.is_set)
            return await acollect(client)

    with gc_disabled():
        events, error = asyncio.run(main())
    assert error is None and events[-1].type == "message-end"


def test_c5_a_held_iterator_keeps_the_request_open_until_aclose(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    # The documented outcome without async with: while the caller holds the iterator, the
    # request stays open (nothing runs on break); aclose() closes it.
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))

    async def main() -> Any:
        async with apool1_client(scripted.base_url, async_transport) as client:
            held = to_async_iterator(client.chat_stream(model="m", messages=MESSAGES))
            async for _ in held:
                break
            served = scripted.wait_for_request(1)
            assert not served.disconnected.is_set()
            assert connections_in_use(client) == 1
            # On httpx's pool of one, the next request waits for it in vain. (The native
            # pool has no cap: it would open a second connection.)
            if async_transport == "httpx":
                client.transport.http.timeout = httpx.Timeout(5.0, pool=0.2)  # type: ignore[attr-defined]
                _, error = await acollect(client, request_options={"max_retries": 0})
                assert isinstance(error, E.APITimeoutError)  # the pool of one is still taken
                assert isinstance(error.__cause__, httpx.PoolTimeout)
            await held.aclose()
            assert await async_wait_until(served.disconnected.is_set)
            return await acollect(client)

    events, error = asyncio.run(main())
    assert error is None and events[-1].type == "message-end"


# ----------------------------------------------------------------------------- C6


class Boom(Exception):
    """The user's own error."""


class UserTransportError(httpx.ReadError):
    """The user's own error, of a type the client would retry if it came from the network."""


@pytest.mark.parametrize("error_type", [Boom, UserTransportError])
def test_c6_an_error_in_the_loop_body_propagates_unchanged_and_closes(
    scripted: ScriptedServer, error_type: type[Exception]
) -> None:
    scripted.enqueue(stalled(), stalled(), sse_ok(text_stream("next")))
    with pool1_client(scripted.base_url) as client:
        # The documented form:
        raised = error_type("user code failed")
        with pytest.raises(error_type) as caught:
            with to_iterator(client.chat_stream(model="m", messages=MESSAGES)) as events:
                for _ in events:
                    raise raised
        assert caught.value is raised
        assert scripted.wait_for_request(1).disconnected.wait(5)
        # A bare for loop: unwinding drops the iterator, which closes the request at once,
        # although the traceback (kept by pytest.raises) still holds the frame.
        with gc_disabled(), pytest.raises(error_type) as caught:
            for _ in to_iterator(client.chat_stream(model="m", messages=MESSAGES)):
                raise raised
        assert caught.value is raised
        assert scripted.wait_for_request(2).disconnected.wait(5)
        events_after, error = collect(client)
    assert error is None and events_after[-1].type == "message-end"
    assert len(scripted.requests) == 3  # nothing was retried


@pytest.mark.parametrize("error_type", [Boom, UserTransportError])
def test_c6_an_error_in_on_next_reaches_on_error_unchanged_and_closes(
    scripted: ScriptedServer, error_type: type[Exception]
) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))
    raised = error_type("user callback failed")
    errors: list[Exception] = []
    done = threading.Event()

    def on_next(_: ChatEvent) -> None:
        raise raised

    def on_error(error: Exception) -> None:
        errors.append(error)
        done.set()

    with pool1_client(scripted.base_url) as client:
        client.chat_stream(model="m", messages=MESSAGES).subscribe(on_next, on_error)
        assert done.wait(5)
        assert scripted.wait_for_request(1).disconnected.wait(5)
        events, error = collect(client)
    assert errors == [raised]
    assert error is None and events[-1].type == "message-end"
    assert len(scripted.requests) == 2


def test_c6_an_error_in_an_operator_callback_reaches_on_error_unchanged(
    scripted: ScriptedServer,
) -> None:
    scripted.enqueue(stalled(), sse_ok(text_stream("next")))
    raised = Boom("mapper failed")

    def mapper(event: ChatEvent) -> str:
        if event.type == "content-start":
            raise raised
        return event.type

    with pool1_client(scripted.base_url) as client:
        collector: Collector[str] = Collector()
        collector.subscribe(client.chat_stream(model="m", messages=MESSAGES).pipe(ops.map(mapper)))
        collector.wait()
        assert scripted.wait_for_request(1).disconnected.wait(5)
        events, error = collect(client)
    assert collector.items == ["message-start"]
    assert collector.error is raised and collector.terminal_signals == 1
    assert error is None and events[-1].type == "message-end"


@pytest.mark.parametrize("error_type", [Boom, UserTransportError])
def test_c6_async_errors_in_the_loop_body_and_on_next_propagate_unchanged(
    scripted: ScriptedServer, async_transport: AsyncTransportName, error_type: type[Exception]
) -> None:
    scripted.enqueue(stalled(), stalled(), sse_ok(text_stream("next")))
    raised = error_type("user code failed")

    async def main() -> Any:
        async with apool1_client(scripted.base_url, async_transport) as client:
            with pytest.raises(error_type) as caught:
                stream = client.chat_stream(model="m", messages=MESSAGES)
                async with to_async_iterator(stream) as it:
                    async for _ in it:
                        raise raised
            assert caught.value is raised
            assert await async_wait_until(scripted.wait_for_request(1).disconnected.is_set)
            errors: list[Exception] = []

            def on_next(_: ChatEvent) -> None:
                raise raised

            client.chat_stream(model="m", messages=MESSAGES).subscribe(on_next, errors.append)
            assert await async_wait_until(lambda: errors != [])
            assert errors == [raised]
            assert await async_wait_until(scripted.wait_for_request(2).disconnected.is_set)
            return await acollect(client)

    events, error = asyncio.run(main())
    assert error is None and events[-1].type == "message-end"
    assert len(scripted.requests) == 3


# ----------------------------------------------------------------------------- C7


@contextlib.contextmanager
def ctrl_c_when(ready: threading.Event) -> Iterator[None]:
    """Deliver SIGINT to the main thread once ``ready`` is set (while it blocks in a read)."""
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    main = threading.main_thread().ident
    assert main is not None
    stop = threading.Event()

    def interrupt() -> None:
        if ready.wait(5) and not stop.is_set():
            time.sleep(0.05)  # let the main thread enter the blocking read
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals")
@pytest.mark.parametrize("bridged", [False, True])
def test_c7_ctrl_c_during_a_blocked_read_propagates_and_closes(
    scripted: ScriptedServer, bridged: bool
) -> None:
    gate = threading.Event()
    events = text_stream("never")
    scripted.enqueue(
        [Headers(), *sse_events(events[:1], done=False), Wait(gate), *sse_events(events[1:])]
    )
    scripted.enqueue(sse_ok(text_stream("next")))
    first = threading.Event()
    before = stream_threads()
    try:
        with pool1_client(scripted.base_url) as client:
            stream = client.chat_stream(model="m", messages=MESSAGES)
            source = stream.pipe(ops.map(lambda e: e)) if bridged else stream
            with pytest.raises(KeyboardInterrupt), ctrl_c_when(first):
                for _ in to_iterator(source):
                    first.set()
            assert scripted.wait_for_request(1).disconnected.wait(5)
            after, error = collect(client)
    finally:
        gate.set()
    assert error is None and after[-1].type == "message-end"
    assert wait_until(lambda: stream_threads() <= before)


# ----------------------------------------------------------------------------- C8

FIFTY_MB = 50 * 1024 * 1024
PADDING = 64 * 1024
MEMORY_BOUND = 8 * 1024 * 1024
"""The documented bound (README, "Reliability"): a slow consumer of a 50 MB stream costs
the client less than 8 MiB of Python memory (a few events of 64 KiB in flight, the
decoder's buffers); the rest waits in the kernel's socket buffers and the server."""


def flood_script() -> list[Any]:
    """message-start, 50 MB of 64 KiB debug events (delivered, never accumulated), the end."""
    events = text_stream("end")
    debug = f'{{"type": "debug", "prompt": "{"x" * PADDING}"}}'
    frame = f"event: debug\ndata: {debug}\n\n".encode()
    return [
        Headers(),
        *sse_events(events[:1], done=False),
        Push(frame, FIFTY_MB // len(frame) + 1),
        *sse_events(events[1:]),
        Finish(),
    ]


def wait_for_backpressure(scripted: ScriptedServer) -> int:
    """Wait until the server can push no more (its sends block); return what it sent."""
    served = scripted.wait_for_request(1)
    last, stable = -1, 0
    while stable < 5:
        time.sleep(0.02)
        sent = served.bytes_sent
        stable = stable + 1 if sent == last else 0
        last = sent
    return last


def check_flood(sent_while_paused: int, events: int, peak: int) -> None:
    assert sent_while_paused < FIFTY_MB // 2, "nothing held the server back"
    assert events > FIFTY_MB // (PADDING + 100)  # every event arrived in the end
    assert peak < MEMORY_BOUND, f"the client held {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("path", ["iterator", "bridge", "observable"])
def test_c8_a_slow_consumer_of_50_mb_holds_bounded_memory(
    scripted: ScriptedServer, path: str
) -> None:
    scripted.enqueue(flood_script())
    count = 0
    paused_at = 0
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        tracemalloc.start()
        try:
            if path == "observable":
                # The reader thread pushes synchronously: a slow on_next stalls the socket.
                done = threading.Event()
                errors: list[Exception] = []

                def on_next(_: ChatEvent) -> None:
                    nonlocal count, paused_at
                    count += 1
                    if count == 2:
                        paused_at = wait_for_backpressure(scripted)

                def on_error(error: Exception) -> None:
                    errors.append(error)
                    done.set()

                stream.subscribe(on_next, on_error, done.set)
                assert done.wait(25) and errors == []
            else:
                source = stream.pipe(ops.map(lambda e: e)) if path == "bridge" else stream
                for _ in to_iterator(source):
                    count += 1
                    if count == 2:
                        paused_at = wait_for_backpressure(scripted)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    check_flood(paused_at, count, peak)


def test_c8_async_slow_consumer_of_50_mb_holds_bounded_memory(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(flood_script())

    async def main() -> tuple[int, int, int]:
        count = paused_at = 0
        async with async_client(
            KEY, base_url=scripted.base_url, transport=async_transport
        ) as client:
            tracemalloc.start()
            try:
                stream = client.chat_stream(model="m", messages=MESSAGES)
                async with to_async_iterator(stream) as it:
                    async for _ in it:
                        count += 1
                        if count == 2:
                            loop = asyncio.get_running_loop()
                            paused_at = await loop.run_in_executor(
                                None, wait_for_backpressure, scripted
                            )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        return paused_at, count, peak

    check_flood(*asyncio.run(main()))
