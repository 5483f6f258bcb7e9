"""The four transports against the same crafted HTTP/1.1 bytes: they must agree.

Each case of :mod:`tests.http_cases` is served byte for byte by a raw loopback server and
read by every transport: ``httpx-sync`` (:class:`~streamkit.Client`), ``httpx-async``
(:class:`~streamkit.AsyncClient`, the default), ``native``
(``AsyncClient(transport="native")``, h11) and ``native-httptools`` (the native transport
on llhttp), all with ``max_retries=0``. An outcome is the list of
event types delivered and the class of the error the stream ended with (None when it
completed). The rules:

* the httpx-async outcome is the reference; every transport's outcome must also match the
  case's expectation where it has one;
* every other transport has the same outcome, or, where they differ, it ended with a
  typed error (a ``StreamkitError``) where httpx-async was more lenient (it completed, or
  delivered more events);
* ``native-httptools`` may also end where httpx-async failed after as many events, if
  llhttp refused the framing (a ``RemoteProtocolError`` cause): its strict mode refuses
  some bytes h11 lets through, such as Content-Length beside Transfer-Encoding;
* no transport delivers an event httpx-async did not: its events are a prefix of them;
* nothing raises an exception outside :mod:`streamkit.errors`;
* asyncio logs no error ("Fatal error on transport", "Exception in callback", ...);
* every run ends within :data:`tests.stream_runner.BOUND` seconds: a hang is a failure;
* ``native-httptools`` (llhttp) has exactly httpx-async's outcome on every case, except
  where the case declares an ``llhttp`` :class:`~tests.http_cases.Difference`: then its
  outcome must be the one stated there, for the reason given. (The mutation fuzz, whose
  inputs have no declarations, holds it to the general rules above.)

The Hypothesis test at the end checks the same properties on mutations of a valid chunked
response: flipped, inserted and deleted bytes, wrong chunk sizes, duplicated headers,
split points.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import tracemalloc
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamkit import errors as E
from tests.http_cases import CASES, EVENT_TYPES, SSE_EVENTS, Expect, HttpCase, head
from tests.raw_server import RawServer, Reply, Then
from tests.stream_runner import NATIVE, Hang, Outcome, Transport, run_streams, transport_params

pytestmark = pytest.mark.timeout(120)

MEMORY_BOUND = 100 * 1024 * 1024
"""Bytes one run may allocate at its peak (the gzip bomb case)."""
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""Far longer than the run's bound, so a transport that waits for a read timeout hangs."""


def run(transport: Transport, base_url: str, server: RawServer) -> Outcome:
    """One stream, ``max_retries=0``; a run that hangs has its connections cut."""
    (outcome,) = run_streams(transport, base_url, timeout=TIMEOUT, on_hang=server.disconnect_all)
    return outcome


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    with RawServer() as raw:
        yield raw


_reference: dict[str, Outcome] = {}
"""The httpx-async outcome of each case, by case id (computed once)."""


def reference(case: HttpCase, base_url: str, server: RawServer) -> Outcome:
    if case.id not in _reference:
        _reference[case.id] = run("httpx-async", base_url, server)
    return _reference[case.id]


# ----------------------------------------------------------------------------- checking


def check_typed(transport: str, outcome: Outcome) -> None:
    """No hang, and no error from outside streamkit's tree."""
    assert not isinstance(outcome.error, Hang), f"{transport} hung: {outcome}"
    assert outcome.error is None or isinstance(outcome.error, E.StreamkitError), (
        f"{transport} raised a non-streamkit exception: {outcome}"
    )


def check_expected(expect: Expect, outcome: Outcome) -> None:
    if expect.events is not None:
        assert outcome.events == expect.events, f"expected {expect}, got {outcome}"
    if expect.error is None:
        assert outcome.error is None, f"expected {expect}, got {outcome}"
    else:
        assert isinstance(outcome.error, expect.error), f"expected {expect}, got {outcome}"


def check_agrees(transport: str, outcome: Outcome, reference: Outcome) -> None:
    """``outcome`` is httpx-async's, or a typed error where httpx-async was more lenient."""
    assert outcome.events == reference.events[: len(outcome.events)], (
        f"{transport} delivered events httpx-async did not: {outcome} / httpx-async: {reference}"
    )
    if outcome.key() == reference.key():
        return
    lenient = reference.error is None or len(reference.events) > len(outcome.events)
    if transport == "native-httptools" and refused_framing(outcome):
        # llhttp's strict mode refused bytes h11 let through (httpx-async then failed on
        # what they carried, after no more events): stricter, never more lenient.
        lenient = True
    assert lenient and isinstance(outcome.error, E.StreamkitError), (
        f"{transport} disagrees with httpx-async: {outcome} / httpx-async: {reference}"
    )


def refused_framing(outcome: Outcome) -> bool:
    """The stream ended because the HTTP parser refused the response's bytes."""
    return isinstance(outcome.error, E.StreamkitError) and isinstance(
        outcome.error.__cause__, httpx.RemoteProtocolError
    )


def asyncio_errors(records: list[logging.LogRecord]) -> list[str]:
    """The asyncio logger's errors: "Fatal error on transport", "Exception in callback", ..."""
    return [
        record.getMessage()
        for record in records
        if record.name.startswith("asyncio") and record.levelno >= logging.ERROR
    ]


# ----------------------------------------------------------------------------- the cases


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_transports_agree_on_crafted_response(
    case: HttpCase, transport: Transport, server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    base_url = _routed(server, case)
    if case.memory:
        outcome, peak = _measured(lambda: run(transport, base_url, server))
        assert peak < MEMORY_BOUND, f"{transport} allocated {peak / 2**20:.0f} MiB at its peak"
    else:
        outcome = run(transport, base_url, server)
    if transport == "httpx-async":
        _reference[case.id] = outcome
    check_typed(transport, outcome)
    assert not asyncio_errors(caplog.records), asyncio_errors(caplog.records)
    if transport == "native-httptools" and case.llhttp is not None:
        # A documented difference (tests/http_cases.py says why): its own outcome instead.
        check_expected(case.llhttp.expect, outcome)
        return
    if case.expect is not None and not (case.only_httpx and transport in NATIVE):
        check_expected(case.expect, outcome)
    if transport != "httpx-async":
        check_agrees(transport, outcome, reference(case, base_url, server))
    if transport == "native-httptools":  # and no difference declared: the very same outcome
        expected = reference(case, base_url, server)
        assert outcome.key() == expected.key(), (
            f"llhttp differs from httpx-async with no Difference declared in tests/http_cases.py:"
            f" {outcome} / httpx-async: {expected}"
        )


def _routed(server: RawServer, case: HttpCase) -> str:
    """The case's base URL, its reply built and routed on first use."""
    if case.id in server.routes:
        return server.url(case.id)
    return server.route(case.id, case.build())


def _measured(work: Callable[[], Outcome]) -> tuple[Outcome, int]:
    """Run ``work``; return its outcome and the peak of the memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        outcome = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return outcome, peak - base


def test_cases_are_many_and_each_names_a_valid_stream() -> None:
    assert len(CASES) >= 75
    assert EVENT_TYPES == (
        "message-start",
        "content-start",
        "content-delta",
        "content-delta",
        "content-delta",
        "content-end",
        "message-end",
    )
    assert SSE_EVENTS[-1] == b"data: [DONE]\n\n"


# ----------------------------------------------------------------------------- fuzzing

_HEAD_LINES = (b"Content-Type: text/event-stream", b"Transfer-Encoding: chunked")
_ENDINGS: tuple[Then, ...] = ("close", "close", "reset")


def _cut(data: bytes, at: list[int]) -> list[bytes]:
    """``data`` cut at the sorted offsets ``at``."""
    return [data[a:b] for a, b in zip([0, *at], [*at, len(data)], strict=True)]


@st.composite
def mutated_responses(draw: st.DrawFn) -> Reply:
    """A valid chunked Cohere stream, then a few mutations of its framing and bytes."""
    body = b"".join(SSE_EVENTS)
    cuts = sorted(draw(st.sets(st.integers(1, len(body) - 1), max_size=8)))
    pieces = _cut(body, cuts)
    style = draw(st.sampled_from([b"%x", b"%X", b"%04x", b"%x;ext=1"]))
    sizes = [len(p) + draw(st.sampled_from([0, 0, 0, 0, 1, -1, 5, -5])) for p in pieces]
    framed = b"".join(
        (style % size if size >= 0 else b"-%x" % -size) + b"\r\n" + piece + b"\r\n"
        for size, piece in zip(sizes, pieces, strict=True)
    )
    framed += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\n\r\n", b"", b"0\r\n"]))
    framed += draw(st.sampled_from([b"", b"", b"", b"after the end", b"5\r\n\x00\xff"]))
    lines = list(_HEAD_LINES)
    extra = draw(
        st.lists(
            st.sampled_from(
                [
                    b"Transfer-Encoding: chunked",
                    b"Content-Length: 12",
                    b"Content-Type: application/json",
                    b"Content-Encoding: gzip",
                    b"X-Served-By: cache-z\xfcrich",
                    b"Connection: close",
                ]
            ),
            max_size=2,
        )
    )
    lines.extend(extra)
    data = bytearray(head(*lines) + framed)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from([b"\r\n", b"\n", b"\r", b"0", b";", b" ", b"\x00", b"ff"])
            )
        else:
            del data[at : at + draw(st.integers(1, 8))]
    raw = bytes(data)
    splits = sorted(draw(st.sets(st.integers(1, len(raw) - 1), max_size=3)))
    segments = tuple(_cut(raw, splits))
    then = draw(st.sampled_from(_ENDINGS))
    return Reply(segments, then, gap=0.001 if splits else 0.0)


_fuzz_ids = itertools.count()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(reply=mutated_responses())
def test_transports_agree_on_mutated_responses(server: RawServer, reply: Reply) -> None:
    base_url = server.route(f"fuzz-{next(_fuzz_ids)}", reply)
    with _asyncio_log() as records:
        reference = run("httpx-async", base_url, server)
        check_typed("httpx-async", reference)
        for transport in ("httpx-sync", *NATIVE):
            outcome = run(transport, base_url, server)
            check_typed(transport, outcome)
            check_agrees(transport, outcome, reference)
    assert not asyncio_errors(records), asyncio_errors(records)


@contextlib.contextmanager
def _asyncio_log() -> Iterator[list[logging.LogRecord]]:
    """The asyncio logger's records at DEBUG while the block runs (caplog is per test)."""
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("asyncio")
    handler = _Keep(logging.DEBUG)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
