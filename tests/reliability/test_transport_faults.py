"""F: transport and HTTP faults over a real loopback socket (the scripted server, F1)."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import logging
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from streamkit import (
    AsyncClient,
    ChatEvent,
    Client,
    MessageEndEvent,
    to_async_iterator,
    to_iterator,
)
from streamkit import errors as E
from streamkit._retry import RetryPolicy
from tests.reliability.support import (
    ASYNC_MODES,
    KEY,
    MESSAGES,
    MODES,
    CountingAsyncTransport,
    CountingTransport,
    Outcome,
    acollect,
    apool1_client,
    collect,
    fast_backoff,
    run_stream,
    transport_of,
)
from tests.scripted_server import (
    Chunk,
    Close,
    Finish,
    Headers,
    Raw,
    Reset,
    ScriptedServer,
    Sleep,
    Stall,
    Step,
    Wait,
    gzip_chunks,
    json_response,
    redirect,
    sse_events,
)
from tests.test_client import end, pool1_client, sse_ok, text_stream
from tests.transports import AsyncTransportName, LedgerNativeTransport, async_client, parser_of

pytestmark = pytest.mark.timeout(30)


def body_of(events: list[dict[str, Any]], *, done: bool = True) -> bytes:
    return b"".join(s.data for s in sse_events(events, done=done) if isinstance(s, Chunk))


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# ----------------------------------------------------------------------------- F-1

STATUSES = [
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
    (503, E.ServiceUnavailableError),
    (504, E.GatewayTimeoutError),
]

BODIES = [
    pytest.param(
        "application/json",
        b'{"message": "nope", "code": 7}',
        {"message": "nope", "code": 7},
        id="json",
    ),
    pytest.param(
        "text/html", b"<html><h1>Nope</h1></html>", "<html><h1>Nope</h1></html>", id="html"
    ),
    pytest.param("application/json", b"", None, id="empty"),
    pytest.param(None, b"plain words", "plain words", id="no-content-type"),
]


def status_script(status: int, ctype: str | None, body: bytes) -> list[Any]:
    extra = (("x-request-id", "req-7"), ("x-custom", "kept"))
    return [Headers(status, ctype, extra), Chunk(body), Finish()]


def check_status_error(error: BaseException | None, status: int, cls: type, body: object) -> None:
    assert type(error) is cls
    assert isinstance(error, E.APIStatusError)
    assert error.status_code == status
    assert error.body == body
    assert error.headers["x-custom"] == "kept"
    assert error.request_id == "req-7"
    assert str(status) in str(error)


@pytest.mark.parametrize(("ctype", "raw", "body"), BODIES)
@pytest.mark.parametrize(("status", "cls"), [pytest.param(s, c, id=str(s)) for s, c in STATUSES])
def test_f1_status_errors_are_typed_and_the_response_is_closed(
    scripted: ScriptedServer,
    status: int,
    cls: type[E.APIStatusError],
    ctype: str | None,
    raw: bytes,
    body: object,
) -> None:
    scripted.enqueue(status_script(status, ctype, raw), sse_ok(text_stream("next")))
    with pool1_client(scripted.base_url, max_retries=0) as client:
        events, error = collect(client)
        assert events == []
        check_status_error(error, status, cls, body)
        # F4: the pool has one connection; had the errored response leaked, this would
        # be a PoolTimeout.
        after, after_error = collect(client)
    assert after_error is None and isinstance(after[-1], MessageEndEvent)


@pytest.mark.parametrize(("ctype", "raw", "body"), BODIES)
@pytest.mark.parametrize(
    ("status", "cls"),
    [pytest.param(s, c, id=str(s)) for s, c in STATUSES if s in (401, 418, 429, 503)],
)
def test_f1_async_status_errors_are_typed_and_the_response_is_closed(
    scripted: ScriptedServer,
    async_transport: AsyncTransportName,
    status: int,
    cls: type[E.APIStatusError],
    ctype: str | None,
    raw: bytes,
    body: object,
) -> None:
    scripted.enqueue(status_script(status, ctype, raw), sse_ok(text_stream("next")))

    async def main() -> tuple[Outcome, Outcome]:
        async with apool1_client(scripted.base_url, async_transport, max_retries=0) as client:
            return await acollect(client), await acollect(client)

    (events, error), (after, after_error) = asyncio.run(main())
    assert events == []
    check_status_error(error, status, cls, body)
    assert after_error is None and isinstance(after[-1], MessageEndEvent)


# ----------------------------------------------------------------------------- F-2


@pytest.mark.parametrize(
    "ctype",
    [
        pytest.param("text/html", id="html"),
        pytest.param("application/json", id="json"),
        pytest.param(None, id="none"),
        pytest.param("text/event-streamx", id="event-streamx"),
        pytest.param("text/plain; x=text/event-stream", id="param-mention"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_f2_a_200_that_is_not_an_event_stream_is_a_protocol_error_with_the_body(
    scripted: ScriptedServer, mode: str, ctype: str | None
) -> None:
    scripted.enqueue([Headers(200, ctype), Chunk(b'{"id": "x", "text": "hi"}'), Finish()])
    events, error = run_stream(mode, scripted.base_url)
    assert events == []
    assert isinstance(error, E.NotEventStreamError)
    assert isinstance(error, E.ProtocolError)
    assert error.content_type == (ctype or "")
    assert error.body == '{"id": "x", "text": "hi"}'
    assert len(scripted.requests) == 1  # not retried: the server answered


@pytest.mark.parametrize(
    "ctype",
    [
        pytest.param("Text/Event-Stream; charset=utf-8", id="case-and-charset"),
        pytest.param("TEXT/EVENT-STREAM", id="upper"),
        pytest.param("text/event-stream;charset=windows-1252", id="wrong-charset-ignored"),
        pytest.param(" text/event-stream ", id="spaces"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_f2_content_type_parameters_and_case_are_accepted(
    scripted: ScriptedServer, mode: str, ctype: str
) -> None:
    events = text_stream("caf\u00e9")
    scripted.enqueue([Headers(200, ctype), *sse_events(events), Finish()])
    received, error = run_stream(mode, scripted.base_url)
    assert error is None
    assert len(received) == len(events)
    assert received[2].text == "caf\u00e9"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        pytest.param(None, E.NotEventStreamError, id="no-content-type"),
        pytest.param("text/event-stream", E.StreamTruncatedError, id="event-stream"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_catalogue_77_a_204_is_no_stream_and_a_typed_error(
    scripted: ScriptedServer, mode: str, ctype: str | None, expected: type[Exception]
) -> None:
    scripted.enqueue([Headers(204, ctype), Finish()])
    events, error = run_stream(mode, scripted.base_url)
    assert events == []
    assert type(error) is expected
    assert len(scripted.requests) == 1


# ----------------------------------------------------------------------------- F-3


@pytest.mark.parametrize("max_retries", [0, 2])
def test_f3_connection_refused_is_retried_then_a_typed_connection_error(max_retries: int) -> None:
    transport = CountingTransport()
    with httpx.Client(transport=transport) as http:
        client = Client(KEY, base_url=f"http://127.0.0.1:{free_port()}", http_client=http)
        fast_backoff(client, max_retries)
        events, error = collect(client)
    assert events == []
    assert isinstance(error, E.APIConnectionError)
    assert not isinstance(error, E.APITimeoutError)
    assert isinstance(error, httpx.TransportError)
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert transport.requests == 1 + max_retries


@pytest.mark.parametrize("max_retries", [0, 2])
def test_f3_async_connection_refused(max_retries: int, async_transport: AsyncTransportName) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"

    async def main() -> tuple[Outcome, int]:
        if async_transport != "httpx":
            # counts the connects it tries
            native = LedgerNativeTransport(parser=parser_of(async_transport))
            async with AsyncClient(KEY, base_url=base_url, transport=native) as client:
                fast_backoff(client, max_retries)
                outcome = await acollect(client)
            await native.aclose()
            return outcome, native.connects
        counting = CountingAsyncTransport()
        async with httpx.AsyncClient(transport=counting) as http:
            client = AsyncClient(KEY, base_url=base_url, http_client=http)
            fast_backoff(client, max_retries)
            return await acollect(client), counting.requests

    (events, error), sends = asyncio.run(main())
    assert isinstance(error, E.APIConnectionError)
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert sends == 1 + max_retries


# ----------------------------------------------------------------------------- F-4, F-5


@pytest.mark.parametrize("mode", MODES)
def test_f4_no_headers_ever_is_a_first_byte_timeout_retried_then_raised(
    scripted: ScriptedServer, mode: str
) -> None:
    scripted.enqueue([Stall()], [Stall()])
    events, error = run_stream(
        mode,
        scripted.base_url,
        timeout=httpx.Timeout(5.0, read=0.15),
        retry=RetryPolicy(max_retries=1, initial_delay=0.01),
    )
    assert events == []
    assert isinstance(error, E.APITimeoutError)
    assert isinstance(error, httpx.TimeoutException)
    assert isinstance(error.__cause__, httpx.ReadTimeout)
    assert len(scripted.requests) == 2  # a timeout before the first byte is retried
    assert scripted.wait_for_request(2).disconnected.wait(5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("options", "reason"),
    [
        pytest.param({"timeout": httpx.Timeout(5.0, read=0.2)}, None, id="read-timeout"),
        pytest.param({"idle_timeout": 0.2}, "idle", id="idle-timeout"),
    ],
)
def test_f5_a_stall_after_two_events_times_out_with_the_partial_message(
    scripted: ScriptedServer, mode: str, options: dict[str, Any], reason: str | None
) -> None:
    events = text_stream("two", " events", " never")
    scripted.enqueue([Headers(), *sse_events(events[:4], done=False), Stall()])
    received, error = run_stream(mode, scripted.base_url, **options)
    assert len(received) == 4
    assert isinstance(error, E.StreamTimeoutError)
    assert isinstance(error, httpx.TimeoutException)
    assert error.reason == reason
    assert error.partial_message is not None
    assert error.partial_message.text == "two events"
    assert error.partial_message.usage is None
    assert len(scripted.requests) == 1
    assert scripted.wait_for_request(1).disconnected.wait(5)


# ----------------------------------------------------------------------------- F-6, F-7


def keepalives(count: int, every: float) -> list[Any]:
    return [step for _ in range(count) for step in (Chunk(b": keep-alive\n\n"), Sleep(every))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("events_first", [0, 3])
def test_f6_keep_alive_comments_do_not_reset_the_event_idle_timeout(
    scripted: ScriptedServer, mode: str, events_first: int
) -> None:
    events = text_stream("alive")[:events_first]
    # 300 keep-alives every 30 ms: 9 s of traffic, while httpx's read timeout is 5 s and
    # would never fire; only the event-idle timer (0.25 s) can end this.
    scripted.enqueue([Headers(), *sse_events(events, done=False), *keepalives(300, 0.03)])
    received, error = run_stream(
        mode, scripted.base_url, idle_timeout=0.25, timeout=httpx.Timeout(5.0)
    )
    assert len(received) == events_first
    assert isinstance(error, E.StreamTimeoutError)
    assert error.reason == "idle"
    assert error.partial_message is not None
    assert error.partial_message.text == ("alive" if events_first else "")
    # Our own timeout is never retried, not even before the first event.
    assert len(scripted.requests) == 1
    assert scripted.wait_for_request(1).disconnected.wait(5)


def trickle(count: int, every: float) -> list[Any]:
    """Slowloris: one byte of a never-ending data line at a time."""
    return [Chunk(b"data: ")] + [step for _ in range(count) for step in (Chunk(b"x"), Sleep(every))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("options", "reason"),
    [
        pytest.param({"deadline": 0.3}, "deadline", id="deadline"),
        # Without a deadline the documented policy still ends it: bytes are not events.
        pytest.param({"idle_timeout": 0.3}, "idle", id="idle-only"),
    ],
)
def test_f7_slowloris_is_stopped_by_the_deadline_or_the_event_idle_timeout(
    scripted: ScriptedServer, mode: str, options: dict[str, Any], reason: str
) -> None:
    events = text_stream("slow")[:3]
    scripted.enqueue([Headers(), *sse_events(events, done=False), *trickle(500, 0.02)])
    received, error = run_stream(mode, scripted.base_url, **options)
    assert len(received) == 3
    assert isinstance(error, E.StreamTimeoutError)
    assert error.reason == reason
    assert error.partial_message is not None and error.partial_message.text == "slow"
    assert scripted.wait_for_request(1).disconnected.wait(5)


def test_f7_deadline_counts_the_retries_too(scripted: ScriptedServer) -> None:
    # A deadline shorter than the server's requested wait: give up at once, do not sleep.
    scripted.enqueue(json_response(503, {"message": "busy"}, ("retry-after", "5")))
    events, error = run_stream("iterator", scripted.base_url, deadline=1.0)
    assert isinstance(error, E.ServiceUnavailableError)
    assert len(scripted.requests) == 1


# ----------------------------------------------------------------------------- F-8, F-9, F-10


def interrupted(fault: Any, tail: list[Any]) -> list[Any]:
    events = text_stream("one", " two", " three")
    return [Headers(), *sse_events(events[:3], done=False), *tail, fault]


FAULTS = [
    pytest.param(interrupted(Close(), []), id="fin-between-chunks"),
    # A chunk header announcing 0x40 bytes, then 10 of them, then FIN: mid-chunk.
    pytest.param(interrupted(Close(), [Raw(b"40\r\nevent: con")]), id="fin-mid-chunk"),
    pytest.param(
        interrupted(Close(), [Chunk(b'event: content-delta\ndata: {"ty')]), id="fin-mid-event"
    ),
    pytest.param(interrupted(Reset(), []), id="rst-between-chunks"),
    pytest.param(interrupted(Reset(), [Raw(b"40\r\nevent: con")]), id="rst-mid-chunk"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("script", FAULTS)
def test_f8_f9_a_broken_connection_mid_stream_is_interrupted_never_retried(
    scripted: ScriptedServer, mode: str, script: list[Any]
) -> None:
    scripted.enqueue(script, sse_ok(text_stream("would duplicate")))
    received, error = run_stream(mode, scripted.base_url)
    assert [e.type for e in received] == ["message-start", "content-start", "content-delta"]
    assert type(error) is E.StreamInterruptedError, repr(error)
    assert isinstance(error, httpx.TransportError)  # still catchable as an httpx error
    assert isinstance(error.__cause__, httpx.TransportError)
    assert not isinstance(error.__cause__, E.StreamkitError)
    assert error.partial_message is not None
    assert error.partial_message.text == "one"
    assert error.partial_message.usage is None  # absent, never zeros
    assert error.partial_message.finish_reason is None
    assert len(scripted.requests) == 1  # no automatic retry after the first event


@pytest.mark.parametrize("mode", MODES)
def test_f10_clean_eof_before_message_end_is_truncated(scripted: ScriptedServer, mode: str) -> None:
    scripted.enqueue(sse_ok(text_stream("almost", " there")[:4], done=False))
    received, error = run_stream(mode, scripted.base_url)
    assert len(received) == 4
    assert type(error) is E.StreamTruncatedError
    assert error.partial_message is not None
    assert error.partial_message.text == "almost there"
    assert error.partial_message.usage is None
    assert len(scripted.requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_f10_an_empty_200_body_is_truncated_not_a_success(
    scripted: ScriptedServer, mode: str
) -> None:
    scripted.enqueue([Headers(), Finish()])
    received, error = run_stream(mode, scripted.base_url)
    assert received == []
    assert type(error) is E.StreamTruncatedError
    assert error.partial_message is not None and error.partial_message.usage is None


# ----------------------------------------------------------------------------- F-11


@pytest.mark.parametrize("mode", MODES)
def test_f11_finish_reason_error_is_a_server_error_after_the_raw_event(
    scripted: ScriptedServer, mode: str
) -> None:
    failing = end("ERROR", error="tool JSON was invalid", error_type="INVALID_TOOL_GENERATION")
    failing["delta"]["usage"] = {}
    scripted.enqueue(sse_ok([*text_stream("plan so far")[:4], failing]))
    received, error = run_stream(mode, scripted.base_url)
    last = received[-1]
    assert isinstance(last, MessageEndEvent)  # operators see the raw event
    assert last.delta.error == "tool JSON was invalid"
    assert type(error) is E.ServerStreamError
    assert error.error == "tool JSON was invalid"
    assert error.error_type == "INVALID_TOOL_GENERATION"
    assert error.event == last
    assert error.partial_message is not None
    assert error.partial_message.text == "plan so far"
    assert error.partial_message.finish_reason == "ERROR"
    assert len(scripted.requests) == 1


# ----------------------------------------------------------------------------- F-12


def retry_delays(records: list[logging.LogRecord]) -> list[float]:
    """The waits the client computed, from its "retrying after ..." log records."""
    delays = []
    for record in records:
        if record.name == "streamkit" and record.getMessage().startswith("retrying after"):
            assert isinstance(record.args, tuple) and isinstance(record.args[1], float)
            delays.append(record.args[1])
    return delays


def test_f12_retries_before_the_body_honour_retry_after(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.enqueue(
        json_response(503, {"message": "busy"}, ("retry-after-ms", "20")),
        json_response(429, {"message": "slow down"}, ("Retry-After", "1")),
        sse_ok(text_stream("third time")),
    )
    with caplog.at_level(logging.INFO, logger="streamkit"):
        received, error = run_stream("iterator", scripted.base_url)
    assert error is None and received[-1].type == "message-end"
    requests = scripted.requests
    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1  # the very same request each time
    headers = [{k: v for k, v in r.headers.items() if k != "host"} for r in requests]
    assert headers[0] == headers[1] == headers[2]
    assert retry_delays(caplog.records) == [0.02, 1.0]
    # Honoured: the third request came at least the requested second after the second.
    assert requests[2].received_at - requests[1].received_at >= 1.0


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_f12_async_retries_the_same_way(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    scripted.enqueue(
        json_response(503, {"message": "busy"}, ("retry-after-ms", "20")),
        json_response(429, {"message": "slow down"}, ("retry-after-ms", "30")),
        sse_ok(text_stream("third time")),
    )
    with caplog.at_level(logging.INFO, logger="streamkit"):
        received, error = run_stream(mode, scripted.base_url)
    assert error is None and received[-1].type == "message-end"
    assert len(scripted.requests) == 3
    assert len({r.body for r in scripted.requests}) == 1
    assert retry_delays(caplog.records) == [0.02, 0.03]
    assert scripted.requests[2].received_at - scripted.requests[1].received_at >= 0.03


def http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "status", "retried", "low", "high"),
    [
        pytest.param(("retry-after", "120"), 503, False, 0, 0, id="over-the-cap-raises-at-once"),
        pytest.param(("retry-after", "DATE+1"), 503, True, 0.0, 1.0, id="http-date"),
        pytest.param(("retry-after", "DATE-3600"), 503, True, 0.0, 0.0, id="past-date-now"),
        pytest.param(("retry-after", "soon"), 503, True, 0.05, 0.05, id="garbage-backoff"),
        pytest.param(("retry-after", "-5"), 503, True, 0.05, 0.05, id="negative-backoff"),
        pytest.param(("retry-after-ms", "40"), 429, True, 0.04, 0.04, id="retry-after-ms"),
        pytest.param(("x-should-retry", "false"), 503, False, 0, 0, id="x-should-retry-false"),
        pytest.param(("x-should-retry", "true"), 409, True, 0.05, 0.05, id="x-should-retry-true"),
        pytest.param(("x-other", "1"), 400, False, 0, 0, id="400-never"),
        pytest.param(("x-other", "1"), 502, True, 0.05, 0.05, id="502-backoff"),
    ],
)
def test_f12_retry_after_variants_over_the_wire(
    scripted: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
    headers: tuple[str, str],
    status: int,
    retried: bool,
    low: float,
    high: float,
) -> None:
    name, value = headers
    if value.startswith("DATE"):
        value = http_date(float(value[4:]))
    scripted.enqueue(
        json_response(status, {"message": "no"}, (name, value)), sse_ok(text_stream("ok"))
    )
    # The default policy, with the jitter fixed at 0.1 of the first 0.5 s backoff ceiling.
    policy = RetryPolicy(random=lambda: 0.1)
    with caplog.at_level(logging.INFO, logger="streamkit"):
        received, error = run_stream("iterator", scripted.base_url, retry=policy)
    delays = retry_delays(caplog.records)
    if retried:
        assert error is None and received[-1].type == "message-end"
        assert len(scripted.requests) == 2
        assert len(delays) == 1 and low <= delays[0] <= high
    else:
        assert isinstance(error, E.APIStatusError) and error.status_code == status
        assert len(scripted.requests) == 1
        assert delays == []


@pytest.mark.parametrize("mode", MODES)
def test_f12_max_retries_zero_per_client_and_per_request(
    scripted: ScriptedServer, mode: str
) -> None:
    scripted.enqueue(json_response(503, {"message": "busy"}, ("retry-after-ms", "1")))
    _, error = run_stream(mode, scripted.base_url, max_retries=0)
    assert isinstance(error, E.ServiceUnavailableError)
    scripted.enqueue(json_response(503, {"message": "busy"}, ("retry-after-ms", "1")))
    _, error = run_stream(
        mode, scripted.base_url, arguments={"request_options": {"max_retries": 0}}
    )
    assert isinstance(error, E.ServiceUnavailableError)
    assert len(scripted.requests) == 2


# ----------------------------------------------------------------------------- F-13


def fast_503() -> list[Any]:
    return json_response(503, {"message": "busy"}, ("retry-after-ms", "1"))


def test_f13_every_retried_response_is_closed(scripted: ScriptedServer) -> None:
    transport = CountingTransport()
    gc.disable()
    try:
        for _ in range(3):
            scripted.enqueue(fast_503(), fast_503(), sse_ok(text_stream("ok")))
        with httpx.Client(
            transport=transport,
            limits=httpx.Limits(max_connections=1),
            timeout=httpx.Timeout(5.0, pool=1.0),
        ) as http:
            client = Client(KEY, base_url=scripted.base_url, http_client=http)
            for _ in range(3):
                events, error = collect(client)
                assert error is None and events[-1].type == "message-end"
    finally:
        gc.enable()
    assert transport.requests == 9
    assert transport.closes == 9
    assert scripted.accepts == 1  # every retried response was read to its end and reused


def test_f13_async_every_retried_response_is_closed(
    scripted: ScriptedServer, async_transport: AsyncTransportName
) -> None:
    # On httpx, a counting transport sees every response closed; the native transport reads
    # each one to its end into the same connection (one accept), its ledger watching.
    counting = CountingAsyncTransport() if async_transport == "httpx" else None
    for _ in range(3):
        scripted.enqueue(fast_503(), fast_503(), sse_ok(text_stream("ok")))

    async def main() -> list[Outcome]:
        async with apool1_client(
            scripted.base_url, async_transport, http_transport=counting
        ) as client:
            return [await acollect(client) for _ in range(3)]

    gc.disable()
    try:
        outcomes = asyncio.run(main())
    finally:
        gc.enable()
    assert all(error is None for _, error in outcomes)
    if counting is not None:
        assert (counting.requests, counting.closes) == (9, 9)
    assert len(scripted.requests) == 9
    assert scripted.accepts == 1


# ----------------------------------------------------------------------------- F-14


@pytest.mark.parametrize("mode", ["iterator", *ASYNC_MODES])
def test_f14_gzip_body_is_decoded_and_each_event_arrives_with_its_block(
    scripted: ScriptedServer, mode: str
) -> None:
    events = text_stream("squeezed", " text")
    pieces = [s.data for s in sse_events(events) if isinstance(s, Chunk)]
    compressed = gzip_chunks(pieces)
    gate = threading.Event()
    # The first two events' blocks, then nothing until the client proved it has them.
    scripted.enqueue(
        [
            Headers(extra=(("Content-Encoding", "gzip"),)),
            *compressed[:2],
            Wait(gate),
            *compressed[2:],
            Finish(),
        ]
    )
    seen: list[ChatEvent] = []

    def on_event(event: ChatEvent) -> None:
        seen.append(event)
        if len(seen) == 2:
            gate.set()  # arrived before the rest of the body was even sent

    if mode == "iterator":
        with Client(KEY, base_url=scripted.base_url) as client:
            for event in to_iterator(client.chat_stream(model="m", messages=MESSAGES)):
                on_event(event)
    else:

        async def main() -> None:
            async with async_client(
                KEY, base_url=scripted.base_url, transport=transport_of(mode)
            ) as client:
                async with to_async_iterator(
                    client.chat_stream(model="m", messages=MESSAGES)
                ) as it:
                    async for event in it:
                        on_event(event)

        asyncio.run(main())
    assert "gzip" in scripted.requests[0].headers["accept-encoding"]
    assert [e.type for e in seen] == [e["type"] for e in events]
    assert "".join(getattr(e, "text", None) or "" for e in seen) == "squeezed text"


# ----------------------------------------------------------------------------- F-15


@pytest.mark.parametrize("mode", ["iterator", *ASYNC_MODES])
def test_f15_proxy_buffering_or_fragmentation_changes_timing_never_content(
    scripted: ScriptedServer, mode: str
) -> None:
    events = text_stream("caf\u00e9 \u6771\u4eac", " \U0001f642", ' "q"\\')
    events.insert(3, {"type": "brand-new-event", "x": [1, {"y": None}]})
    body = body_of(events)
    as_sent: list[Step] = [Headers(), *sse_events(events), Finish()]
    buffered: list[Step] = [Headers(), Chunk(body), Finish()]
    fragmented: list[Step] = [Headers(), *(Chunk(body[i : i + 1]) for i in range(len(body)))]
    fragmented.append(Finish())
    crlf: list[Step] = [Headers(), Chunk(body.replace(b"\n", b"\r\n")), Finish()]
    scripted.enqueue(as_sent, buffered, fragmented, crlf)
    outcomes = [run_stream(mode, scripted.base_url) for _ in range(4)]
    assert outcomes[0][1] is None
    assert outcomes[0] == outcomes[1] == outcomes[2] == outcomes[3]


def test_f15_buffered_and_fragmented_failures_are_identical_too(
    scripted: ScriptedServer,
) -> None:
    body = body_of(text_stream("a", "b")[:4], done=False) + b"data: {broken\n\n"
    scripted.enqueue([Headers(), Chunk(body), Finish()])
    scripted.enqueue([Headers(), *(Chunk(body[i : i + 1]) for i in range(len(body))), Finish()])
    (e1, x1), (e2, x2) = (run_stream("iterator", scripted.base_url) for _ in range(2))
    assert e1 == e2 and len(e1) == 4
    assert isinstance(x1, E.MalformedEventError) and isinstance(x2, E.MalformedEventError)
    assert (x1.event, str(x1)) == (x2.event, str(x2))
    assert x1.partial_message == x2.partial_message


# ----------------------------------------------------------------------------- F-16


# httpx only: the subject is httpx's follow_redirects. The native transport never follows a
# redirect (test_f16_redirects_off_by_default_are_a_typed_error runs over it).
@pytest.mark.parametrize("mode", ["iterator", "async-httpx"])
def test_f16_cross_origin_redirect_never_carries_the_key(
    scripted: ScriptedServer, mode: str
) -> None:
    with ScriptedServer() as other:
        other.enqueue(sse_ok(text_stream("moved")))
        scripted.enqueue(redirect(other.base_url + "/v2/chat", 307))
        if mode == "iterator":
            with httpx.Client(follow_redirects=True) as http:
                client = Client(KEY, base_url=scripted.base_url, http_client=http)
                received, error = collect(client)
        else:

            async def main() -> Outcome:
                async with httpx.AsyncClient(follow_redirects=True) as http:
                    client = AsyncClient(KEY, base_url=scripted.base_url, http_client=http)
                    return await acollect(client)

            received, error = asyncio.run(main())
        assert error is None and received[-1].type == "message-end"
        moved = other.requests[0]
    assert scripted.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in moved.headers
    assert KEY not in json.dumps(moved.raw_headers) + moved.path
    assert KEY.encode() not in moved.body
    assert moved.json()["stream"] is True  # a 307 re-sends the same body


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_f16_redirects_off_by_default_are_a_typed_error(
    scripted: ScriptedServer, mode: str, status: int
) -> None:
    scripted.enqueue(redirect("http://127.0.0.1:9/v2/chat", status))
    received, error = run_stream(mode, scripted.base_url)
    assert received == []
    assert type(error) is E.APIStatusError
    assert error.status_code == status
    assert error.headers["location"] == "http://127.0.0.1:9/v2/chat"
    assert len(scripted.requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_f6_a_slow_consumer_does_not_trip_the_idle_timeout(
    scripted: ScriptedServer, mode: str
) -> None:
    # The consumer spends 0.3 s on the first event, longer than the 0.2 s idle_timeout; the
    # server's next event comes 0.35 s after the first, so the client itself waits only
    # 0.05 s for it. The idle clock must run only while the client waits for the server.
    events = text_stream("slow", " reader", " here")
    scripted.enqueue(
        [Headers(), *sse_events(events[:1], done=False), Sleep(0.35), *sse_events(events[1:])]
    )
    seen: list[ChatEvent] = []

    def slow(event: ChatEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            time.sleep(0.3)

    if mode.startswith("async-"):

        async def main() -> BaseException | None:
            async with async_client(
                KEY, base_url=scripted.base_url, idle_timeout=0.2, transport=transport_of(mode)
            ) as client:
                try:
                    stream = client.chat_stream(model="m", messages=MESSAGES)
                    async with to_async_iterator(stream) as it:
                        async for event in it:
                            seen.append(event)
                            if len(seen) == 1:
                                await asyncio.sleep(0.3)
                except E.StreamkitError as error:
                    return error
            return None

        error = asyncio.run(main())
    else:
        with Client(KEY, base_url=scripted.base_url, idle_timeout=0.2) as client:
            stream = client.chat_stream(model="m", messages=MESSAGES)
            error = None
            if mode == "iterator":
                try:
                    for event in to_iterator(stream):
                        slow(event)
                except E.StreamkitError as caught:
                    error = caught
            else:
                done = threading.Event()
                errors: list[Exception] = []

                def on_error(caught: Exception) -> None:
                    errors.append(caught)
                    done.set()

                stream.subscribe(slow, on_error, done.set)
                assert done.wait(10)
                error = errors[0] if errors else None
    assert error is None, repr(error)
    assert [e.type for e in seen] == [e["type"] for e in events]
