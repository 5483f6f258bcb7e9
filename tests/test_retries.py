"""Retries before the first event, never after; timeouts that carry the partial message."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import socket
import threading
from typing import Any

import httpx
import pytest

from streamkit import ChatEvent, Client, to_async_iterator, to_iterator
from streamkit import errors as E
from streamkit._retry import RetryPolicy
from tests.scripted_server import (
    Chunk,
    Close,
    Headers,
    Reset,
    ScriptedServer,
    Sleep,
    Stall,
    json_response,
    sse_events,
)
from tests.test_client import KEY, MESSAGES, pool1_client, sse_ok, text_stream
from tests.transports import AsyncTransportName, async_client

# ----------------------------------------------------------------------------- the policy (pure)


def fixed(value: float) -> RetryPolicy:
    return RetryPolicy(max_retries=3, random=lambda: value, clock=lambda: 1_000_000.0)


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    policy = fixed(1.0)
    assert [policy.backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert fixed(0.25).backoff(2) == 0.5


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after": "3"}, 3.0, id="seconds"),
        pytest.param({"retry-after": "1.5"}, 1.5, id="fraction"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-wins"),
        pytest.param(
            {"retry-after": email.utils.formatdate(1_000_004.0, usegmt=True)}, 4.0, id="http-date"
        ),
        pytest.param(
            {"retry-after": email.utils.formatdate(999_000.0, usegmt=True)}, 0.0, id="past-date"
        ),
        pytest.param({"retry-after": "soon"}, 0.5, id="garbage-falls-back-to-backoff"),
        pytest.param({"retry-after": "-5"}, 0.5, id="negative-falls-back-to-backoff"),
        pytest.param({}, 0.5, id="none-backoff"),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float) -> None:
    assert fixed(1.0).delay_for_status(0, 503, httpx.Headers(headers)) == expected


def test_a_retry_after_over_the_cap_gives_up_at_once() -> None:
    assert fixed(1.0).delay_for_status(0, 429, httpx.Headers({"retry-after": "120"})) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 498, 499, 501])
def test_other_statuses_are_never_retried(status: int) -> None:
    assert fixed(1.0).delay_for_status(0, status, httpx.Headers()) is None


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert fixed(1.0).delay_for_status(0, status, httpx.Headers()) == 0.5


def test_x_should_retry_overrides_the_status() -> None:
    policy = fixed(1.0)
    assert policy.delay_for_status(0, 503, httpx.Headers({"x-should-retry": "false"})) is None
    assert policy.delay_for_status(0, 409, httpx.Headers({"x-should-retry": "true"})) == 0.5


def test_max_retries_bounds_the_attempts() -> None:
    policy = RetryPolicy(max_retries=2, random=lambda: 1.0)
    assert policy.delay_for_status(1, 503, httpx.Headers()) is not None
    assert policy.delay_for_status(2, 503, httpx.Headers()) is None
    assert RetryPolicy(max_retries=0).delay_for_transport_error(0) is None
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


# ----------------------------------------------------------------------------- over the wire


def fast_status(status: int) -> list[Any]:
    return json_response(status, {"message": "busy"}, ("retry-after-ms", "10"))


def test_retries_503_and_429_then_streams(scripted: ScriptedServer) -> None:
    scripted.enqueue(fast_status(503), fast_status(429), sse_ok(text_stream("finally")))
    with Client(KEY, base_url=scripted.base_url) as client:
        events = list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert events[-1].type == "message-end"
    bodies = [r.body for r in scripted.requests]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same request each time


def test_gives_up_after_max_retries_with_the_last_error(scripted: ScriptedServer) -> None:
    scripted.enqueue(fast_status(500), fast_status(502), fast_status(504))
    with Client(KEY, base_url=scripted.base_url, max_retries=2) as client:
        with pytest.raises(E.GatewayTimeoutError):
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert len(scripted.requests) == 3


def test_request_options_can_turn_retries_off(scripted: ScriptedServer) -> None:
    scripted.enqueue(fast_status(503), sse_ok(text_stream("x")))
    with Client(KEY, base_url=scripted.base_url) as client:
        stream = client.chat_stream(
            model="m", messages=MESSAGES, request_options={"max_retries": 0}
        )
        with pytest.raises(E.ServiceUnavailableError):
            list(to_iterator(stream))
    assert len(scripted.requests) == 1


def test_400_is_never_retried(scripted: ScriptedServer) -> None:
    scripted.enqueue(json_response(400, {"message": "bad"}), sse_ok(text_stream("x")))
    with Client(KEY, base_url=scripted.base_url) as client:
        with pytest.raises(E.BadRequestError):
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert len(scripted.requests) == 1


def test_retried_responses_are_closed(scripted: ScriptedServer) -> None:
    gc.disable()
    try:
        for _ in range(3):
            scripted.enqueue(fast_status(503), fast_status(503), sse_ok(text_stream("ok")))
        with pool1_client(scripted.base_url) as client:
            for _ in range(3):
                stream = client.chat_stream(model="m", messages=MESSAGES)
                assert list(to_iterator(stream))[-1].type == "message-end"
    finally:
        gc.enable()
    assert len(scripted.requests) == 9


def test_connection_refused_is_retried_then_raised() -> None:
    attempts: list[httpx.Request] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            attempts.append(request)
            return super().handle_request(request)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with httpx.Client(transport=Counting()) as http:
        client = Client(KEY, base_url=f"http://127.0.0.1:{port}", http_client=http, max_retries=1)
        with pytest.raises(E.APIConnectionError):
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert len(attempts) == 2


def test_no_retry_once_an_event_was_delivered(scripted: ScriptedServer) -> None:
    events = text_stream("a", "b")
    scripted.enqueue([Headers(), *sse_events(events[:3], done=False), Reset()])
    scripted.enqueue(sse_ok(text_stream("would duplicate")))
    with Client(KEY, base_url=scripted.base_url) as client:
        with pytest.raises(E.StreamInterruptedError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert len(scripted.requests) == 1
    assert caught.value.partial_message is not None
    assert caught.value.partial_message.text == "a"


def test_a_connection_dropped_before_any_event_is_retried(scripted: ScriptedServer) -> None:
    scripted.enqueue([Headers(), Close()], sse_ok(text_stream("second try")))
    with Client(KEY, base_url=scripted.base_url) as client:
        events = list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert len(scripted.requests) == 2
    assert events[-1].type == "message-end"


def test_dispose_during_backoff_stops_the_retries(scripted: ScriptedServer) -> None:
    scripted.enqueue(json_response(503, {"message": "busy"}, ("retry-after", "30")))
    with Client(KEY, base_url=scripted.base_url) as client:
        seen: list[Any] = []
        subscription = client.chat_stream(model="m", messages=MESSAGES).subscribe(
            seen.append, seen.append, lambda: seen.append("done")
        )
        scripted.wait_for_request(1)
        subscription.dispose()
        threads = [t for t in threading.enumerate() if t.name == "streamkit-stream"]
        for thread in threads:
            thread.join(5)
            assert not thread.is_alive()
    assert seen == [] and len(scripted.requests) == 1


# ----------------------------------------------------------------------------- timeouts


def test_first_byte_timeout_is_a_typed_timeout(scripted: ScriptedServer) -> None:
    scripted.enqueue([Stall()])
    with Client(
        KEY, base_url=scripted.base_url, timeout=httpx.Timeout(5.0, read=0.2), max_retries=0
    ) as client:
        with pytest.raises(E.APITimeoutError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert isinstance(caught.value, httpx.TimeoutException)


def test_read_timeout_mid_stream_carries_the_partial_message(scripted: ScriptedServer) -> None:
    events = text_stream("two", " events")
    scripted.enqueue([Headers(), *sse_events(events[:4], done=False), Stall()])
    with Client(KEY, base_url=scripted.base_url, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        with pytest.raises(E.StreamTimeoutError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert caught.value.partial_message is not None
    assert caught.value.partial_message.text == "two events"
    assert caught.value.partial_message.usage is None
    assert len(scripted.requests) == 1


def keepalive_forever(events: list[dict[str, Any]]) -> list[Any]:
    return [Headers(), *sse_events(events, done=False)] + [
        step for _ in range(200) for step in (Chunk(b": keep-alive\n\n"), Sleep(0.05))
    ]


def test_idle_timeout_fires_through_keep_alive_comments(scripted: ScriptedServer) -> None:
    scripted.enqueue(keepalive_forever(text_stream("alive")[:3]))
    with Client(KEY, base_url=scripted.base_url, idle_timeout=0.4) as client:
        with pytest.raises(E.StreamTimeoutError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert caught.value.reason == "idle"
    assert caught.value.partial_message is not None
    assert caught.value.partial_message.text == "alive"
    assert scripted.wait_for_request(1).disconnected.wait(5)


def test_deadline_fires_on_a_slowloris(scripted: ScriptedServer) -> None:
    trickle = [step for _ in range(400) for step in (Chunk(b":"), Sleep(0.02))]
    scripted.enqueue([Headers(), *sse_events(text_stream("slow")[:3], done=False), *trickle])
    with Client(KEY, base_url=scripted.base_url, deadline=0.5) as client:
        with pytest.raises(E.StreamTimeoutError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    assert caught.value.reason == "deadline"
    assert caught.value.partial_message is not None
    assert caught.value.partial_message.text == "slow"


def test_async_idle_timeout_and_retry(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue(fast_status(503), sse_ok(text_stream("ok")))
    scripted.enqueue(keepalive_forever(text_stream("idle")[:3]))

    async def main() -> tuple[list[ChatEvent], BaseException | None]:
        async with async_client(
            KEY, base_url=scripted.base_url, idle_timeout=0.4, transport=async_transport
        ) as client:
            ok = [
                e async for e in to_async_iterator(client.chat_stream(model="m", messages=MESSAGES))
            ]
            try:
                async with to_async_iterator(
                    client.chat_stream(model="m", messages=MESSAGES)
                ) as it:
                    async for _ in it:
                        pass
            except E.StreamTimeoutError as error:
                return ok, error
        return ok, None

    ok, error = asyncio.run(main())
    assert ok[-1].type == "message-end" and len(scripted.requests) == 3
    assert isinstance(error, E.StreamTimeoutError) and error.reason == "idle"


def test_asyncio_timeout_around_a_stalled_stream(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    scripted.enqueue([Headers(), *sse_events(text_stream("x")[:2], done=False), Stall()])

    async def main() -> None:
        async with async_client(
            KEY, base_url=scripted.base_url, transport=async_transport
        ) as client:
            stream = client.chat_stream(model="m", messages=MESSAGES)
            with pytest.raises(asyncio.TimeoutError):
                async with to_async_iterator(stream) as events:
                    await asyncio.wait_for(_drain(events), 0.3)

    async def _drain(events: Any) -> None:
        async for _ in events:
            pass

    asyncio.run(main())
    assert scripted.wait_for_request(1).disconnected.wait(5)
