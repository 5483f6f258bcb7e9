"""The sans-IO stream engine, with no server: what each transport event leads to."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamkit import errors as E
from streamkit._engine import ERROR_BODY_LIMIT, Attempt, StreamEngine, StreamPlan
from streamkit._retry import RetryPolicy
from streamkit._sse_event import ServerSentEvent
from tests.scripted_server import Chunk, sse_events
from tests.test_client import text_stream

KEY = "sk-engine-canary-0123456789"
SSE = httpx.Headers({"content-type": "text/event-stream"})
JSON = httpx.Headers({"content-type": "application/json"})
BODY = b"".join(
    step.data for step in sse_events(text_stream("Hello", " world")) if isinstance(step, Chunk)
)
TYPES = [event["type"] for event in text_stream("Hello", " world")]


def engine(
    *,
    retries: int = 2,
    whole: bool = False,
    deadline: float | None = None,
    clock: Iterator[float] | None = None,
    max_event_size: int = 16 * 1024 * 1024,
) -> StreamEngine:
    request = httpx.Request(
        "POST",
        "http://127.0.0.1:9/v2/chat",
        headers={"Authorization": f"Bearer {KEY}", "X-Api-Key": KEY},
        content=b"{}",
    )
    ticks = clock or iter(float(n) for n in range(10_000))
    plan = StreamPlan(
        RetryPolicy(max_retries=retries, random=lambda: 0.5),
        max_event_size=max_event_size,
        deadline=deadline,
    )
    return StreamEngine(request, plan, whole=whole, clock=lambda: next(ticks))


def types(attempt: Attempt, *pieces: bytes) -> list[str]:
    found = [event.type for piece in pieces for event in attempt.receive(piece)]
    found += [event.type for event in attempt.end()]
    return found


def test_a_stream_in_any_pieces_gives_the_same_events() -> None:
    for size in (1, 7, 64, len(BODY)):
        attempt = engine().attempt()
        attempt.head(200, SSE)
        pieces = [BODY[i : i + size] for i in range(0, len(BODY), size)]
        assert types(attempt, *pieces) == TYPES


def _raw_deflate(data: bytes) -> bytes:
    return zlib.compress(data)[2:-4]


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param("deflate", zlib.compress, id="deflate-zlib"),
        pytest.param("deflate", _raw_deflate, id="deflate-raw"),
    ],
)
def test_content_codings_are_undone(coding: str, compress: Callable[[bytes], bytes]) -> None:
    attempt = engine().attempt()
    attempt.head(200, httpx.Headers({**SSE, "content-encoding": coding}))
    packed = compress(BODY)
    assert types(attempt, packed[:5], packed[5:]) == TYPES


def test_stacked_codings_are_undone_in_reverse_order() -> None:
    attempt = engine().attempt()
    attempt.head(200, httpx.Headers({**SSE, "content-encoding": "deflate, gzip"}))
    assert types(attempt, gzip.compress(zlib.compress(BODY))) == TYPES


def test_a_corrupt_gzip_body_is_a_typed_error_with_the_partial_message() -> None:
    attempt = engine().attempt()
    attempt.head(200, httpx.Headers({**SSE, "content-encoding": "gzip"}))
    packed = gzip.compress(BODY)
    good = [event.type for event in attempt.receive(packed[:40])]
    with pytest.raises(E.ContentDecodingError) as caught:
        list(attempt.receive(b"\xff" * 64))
    assert caught.value.partial_message is not None
    assert len(good) <= len(TYPES)


def test_a_gzip_bomb_meets_the_event_limit_in_bounded_memory() -> None:
    attempt = engine(max_event_size=1024 * 1024).attempt()
    attempt.head(200, httpx.Headers({**SSE, "content-encoding": "gzip"}))
    bomb = gzip.compress(b"data: " + b"x" * (64 * 1024 * 1024), 9)
    assert len(bomb) < 100 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(E.EventTooLargeError):
            for start in range(0, len(bomb), 16384):
                list(attempt.receive(bomb[start : start + 16384]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # the limit plus a few 64 KiB pieces, not 64 MiB


def test_an_error_body_is_read_only_up_to_its_limit() -> None:
    attempt = engine().attempt()
    attempt.head(500, JSON)
    with pytest.raises(E.InternalServerError) as caught:
        for _ in range(100):
            list(attempt.receive(b"x" * 16384))
    assert isinstance(caught.value.body, str) and len(caught.value.body) <= ERROR_BODY_LIMIT


def test_an_error_body_becomes_the_status_error_with_the_servers_message() -> None:
    attempt = engine().attempt()
    attempt.head(429, httpx.Headers({**JSON, "x-request-id": "r-1"}))
    list(attempt.receive(json.dumps({"message": "slow down"}).encode()))
    with pytest.raises(E.RateLimitError) as caught:
        list(attempt.end())
    assert "slow down" in str(caught.value) and caught.value.request_id == "r-1"


def test_a_2xx_that_is_not_an_event_stream_is_not_one() -> None:
    attempt = engine().attempt()
    attempt.head(200, JSON)
    list(attempt.receive(b'{"id": "x"}'))
    with pytest.raises(E.NotEventStreamError):
        list(attempt.end())


def test_a_whole_answer_is_parsed_and_bounded() -> None:
    reply = {
        "id": "r",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
    }
    eng = engine(whole=True)
    attempt = eng.attempt()
    attempt.head(200, JSON)
    assert list(attempt.receive(json.dumps(reply).encode())) == []
    assert list(attempt.end()) == []
    assert eng.answer().text == "hi"
    small = engine(whole=True, max_event_size=10).attempt()
    small.head(200, JSON)
    with pytest.raises(E.ProtocolError):
        list(small.receive(json.dumps(reply).encode()))


def test_what_breaks_after_done_leaves_the_stream_complete() -> None:
    attempt = engine().attempt()
    attempt.head(200, SSE)
    assert [e.type for e in attempt.receive(BODY)] == TYPES
    assert attempt.complete
    assert attempt.broken(httpx.RemoteProtocolError("bad chunk")) is None
    assert attempt.failed(httpx.ReadTimeout("late")) is None
    assert list(attempt.receive(b"\xff garbage after done")) == []


def test_a_break_before_done_carries_the_partial_message() -> None:
    attempt = engine().attempt()
    attempt.head(200, SSE)
    list(attempt.receive(BODY[:200]))
    failure = attempt.broken(httpx.ReadError("reset"))
    assert isinstance(failure, E.StreamInterruptedError)
    assert failure.partial_message is not None
    assert isinstance(failure.__cause__, httpx.ReadError)
    timeout = attempt.failed(httpx.ReadTimeout("slow"))
    assert isinstance(timeout, E.StreamTimeoutError) and timeout.reason is None
    ours = attempt.failed(httpx.ReadError("shut down"), "idle")
    assert isinstance(ours, E.StreamTimeoutError) and ours.reason == "idle"


def test_no_answer_is_a_connection_or_timeout_error() -> None:
    attempt = engine().attempt()
    assert isinstance(attempt.unanswered(httpx.ConnectError("refused")), E.APIConnectionError)
    assert isinstance(attempt.unanswered(httpx.ReadTimeout("slow")), E.APITimeoutError)


def test_a_request_is_sent_at_most_one_plus_max_retries_times() -> None:
    for retries in (0, 1, 3):
        eng = engine(retries=retries)
        sends = 0
        while True:
            attempt = eng.attempt()
            sends += 1
            delay = eng.retry_delay(attempt.unanswered(httpx.ConnectError("refused")))
            if delay is None:
                break
        assert sends == eng.sends == 1 + retries
        with pytest.raises(AssertionError):
            eng.attempt()


def test_what_is_retried() -> None:
    def first_error(status: int, headers: dict[str, str] | None = None) -> E.StreamkitError:
        attempt = engine().attempt()
        attempt.head(status, httpx.Headers({**JSON, **(headers or {})}))
        with pytest.raises(E.APIStatusError) as caught:
            list(attempt.end())
        return caught.value

    eng = engine()
    eng.attempt()
    assert eng.retry_delay(first_error(503)) == pytest.approx(0.25)
    assert eng.retry_delay(first_error(429, {"retry-after": "3"})) == 3.0
    assert eng.retry_delay(first_error(400)) is None
    assert eng.retry_delay(first_error(503, {"x-should-retry": "false"})) is None
    idle = E.StreamTimeoutError("idle", reason="idle")
    assert eng.retry_delay(idle) is None
    assert eng.retry_delay(E.MalformedEventError("bad", event=ServerSentEvent())) is None


def test_nothing_is_retried_once_an_event_was_delivered() -> None:
    eng = engine()
    attempt = eng.attempt()
    attempt.head(200, SSE)
    list(attempt.receive(BODY[:200]))
    failure = attempt.broken(httpx.ReadError("reset"))
    assert failure is not None and eng.retry_delay(failure) is None


def test_a_retry_never_waits_past_the_deadline() -> None:
    eng = engine(deadline=2.0, clock=iter([0.0, 0.5, 1.9, 1.9]))
    attempt = eng.attempt()
    failure = attempt.unanswered(httpx.ConnectError("refused"))
    assert eng.retry_delay(failure) == pytest.approx(0.25)  # 1.5 s left
    assert eng.retry_delay(failure) is None  # 0.1 s left


def test_final_masks_the_key_everywhere_an_error_carries_it() -> None:
    eng = engine(retries=0)
    attempt = eng.attempt()
    attempt.head(401, httpx.Headers({**JSON, "x-echo": f"Bearer {KEY}", "www-authenticate": KEY}))
    list(attempt.receive(json.dumps({"message": f"bad key {KEY}"}).encode()))
    with pytest.raises(E.UnauthorizedError) as caught:
        list(attempt.end())
    error = eng.final(caught.value)
    assert KEY not in str(error) and KEY not in repr(error)
    assert KEY not in json.dumps(error.headers) and KEY not in json.dumps(error.body)
    cause = httpx.RemoteProtocolError(f"illegal header line: b'x: {KEY}'")
    cause.request = eng.request
    other = engine(retries=0)
    masked = other.final(other.attempt().unanswered(cause))
    assert isinstance(masked, E.APIConnectionError)
    assert KEY not in str(masked) and KEY not in str(masked.__cause__)
    for item in (masked, masked.__cause__):
        assert isinstance(item, httpx.RequestError)
        assert KEY not in str(item.request.headers)
    assert other.request.headers["authorization"] == f"Bearer {KEY}"  # the sent one is intact


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["gzip", "deflate", "identity"]))
def test_any_body_gives_events_or_a_typed_error(data: bytes, coding: str) -> None:
    attempt = engine().attempt()
    attempt.head(200, httpx.Headers({**SSE, "content-encoding": coding}))
    try:
        list(attempt.receive(data))
        list(attempt.end())
    except E.StreamkitError:
        pass
