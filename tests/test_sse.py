"""Conformance tests for the SSE decoder, after WHATWG HTML §9.2.6.

Row numbers (#N) refer to section 1 of the reliability test catalogue; P-numbers to its
section 2 P. Rows that need an HTTP response (#75-#79) live with the client's tests.
"""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import FrozenInstanceError, dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamkit._sse import MAX_RETRY_MS, ServerSentEvent, SSEDecoder
from streamkit.errors import EventTooLargeError, LineTooLargeError

Triple = tuple[str, str, str]
"""An event as the catalogue writes it: (type, data, lastEventId)."""


@dataclass(frozen=True)
class Row:
    """One catalogue row: the network chunks, and what a browser makes of them."""

    chunks: tuple[bytes, ...]
    events: tuple[Triple, ...]
    last_event_id: str = ""
    retry: int | None = None
    unterminated: bool = False


def row(
    row_id: str,
    chunks: bytes | tuple[bytes, ...],
    *events: Triple,
    last_event_id: str = "",
    retry: int | None = None,
    unterminated: bool = False,
) -> object:
    if isinstance(chunks, bytes):
        chunks = (chunks,)
    return pytest.param(
        Row(chunks, events, last_event_id, retry, unterminated),
        id=row_id,
    )


def msg(data: str, last_event_id: str = "") -> Triple:
    return ("message", data, last_event_id)


COMMENTS_BODY = (
    b"data:1\r:\x00\n:\r\ndata:2\n:"
    + b"x" * 2048
    + b"\rdata:3\n:data:fail\r:"
    + b"y" * 2048
    + b"\ndata:4\n\n"
)

CATALOGUE = [
    # A. Decoding, BOM, code points.
    # #1: the Content-Type charset plays no part: the decoder has no way to be told one.
    row("01-always-utf8", b"data:ok\xe2\x80\xa6\n\n", msg("ok\u2026")),
    row(
        "02-invalid-bytes-replaced",
        b"data: \xff\xfe ok\n\ndata: next\n\n",
        msg("\ufffd\ufffd ok"),
        msg("next"),
    ),
    row(
        "03-char-split-across-chunks",
        (b"data: caf\xc3", b"\xa9 \xe2\x82", b"\xac\n\n"),
        msg("caf\u00e9 \u20ac"),
    ),
    row("04-dangling-bytes-at-eof", b"data: a\n\ndata: \xe2\x82", msg("a"), unterminated=True),
    row("05-bom-stripped", b"\xef\xbb\xbfdata: 1\n\ndata: 2\n\n", msg("1"), msg("2")),
    row("06-bom-split", (b"\xef", b"\xbb\xbfdata: 1\n\n"), msg("1")),
    row(
        "07-only-one-bom-stripped",
        b"\xef\xbb\xbf\xef\xbb\xbfdata:1\n\ndata:2\n\ndata:3\n\n",
        msg("2"),
        msg("3"),
    ),
    row(
        "08-bom-only-at-stream-start",
        b"data:1\n\n\xef\xbb\xbfdata:2\n\ndata:3\n\n",
        msg("1"),
        msg("3"),
    ),
    row("09-nul-in-data", b"data:\x00\n\n", msg("\x00")),
    row(
        "10-only-cr-lf-end-lines",
        "data: a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg\n\n".encode(),
        msg("a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"),
    ),
    # B. Line endings and framing.
    row("11-lf", b"data: a\n\ndata: b\n\n", msg("a"), msg("b")),
    row("12-crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", msg("a"), msg("b")),
    row("13-cr", b"data: a\r\rdata: b\r\r", msg("a"), msg("b")),
    row("14-comments-wpt", COMMENTS_BODY, msg("1\n2\n3\n4")),
    row("15-lf-then-crlf", b"data: a\n\r\n", msg("a")),
    row("16-cr-cr", b"data: a\r\r", msg("a")),
    row("17-crlf-split-after-cr", (b"data: a\r", b"\n\r", b"\n"), msg("a")),
    row(
        "18-cr-then-crlf-is-one-blank-line",
        (b"id: 7\rx: y\ndata\r\r", b"\ndata\ndata\n\n"),
        msg("", "7"),
        msg("\n", "7"),
        last_event_id="7",
    ),
    row("18b-crlf-split-joins-lines", (b"data: a\r", b"\ndata: b\n\n"), msg("a\nb")),
    row("19-lf-then-cr-is-two-line-ends", (b"data: a\n\r", b"data: b\n\n"), msg("a"), msg("b")),
    row("20-space-line-is-a-field", b"data: a\n \ndata: b\n\n", msg("a\nb")),
    row("21-leading-blank-lines", b"\n\n\r\ndata: a\n\n", msg("a")),
    row("22-extra-blank-lines", b"data: a\n\n\n\n\ndata: b\n\n", msg("a"), msg("b")),
    row(
        "22b-extra-blank-lines-after-id",
        b"id: 1\ndata: a\n\n\n\n\ndata: b\n\n",
        msg("a", "1"),
        msg("b", "1"),
        last_event_id="1",
    ),
    # C. Comments and field syntax.
    row("23-comment-block", b": hello\n\ndata: x\n\n", msg("x")),
    row("24-comment-looking-like-data", b":data: fail\ndata: ok\n\n", msg("ok")),
    # #25 at 4 KiB, so that the every-split test stays quick; 64 KiB is tested below.
    row("25-long-comment", b": " + b"k" * 4096 + b"\ndata: x\n\n", msg("x")),
    row(
        "26-one-space-stripped",
        b"data:test\n\ndata: test\n\ndata:  test\n\n",
        msg("test"),
        msg("test"),
        msg(" test"),
    ),
    row("27-tab-not-stripped", b"data:\tx\n\n", msg("\tx")),
    row("28-bare-data-field", b"data\n\n", msg("")),
    row("29-split-at-first-colon", b"data: a:b: c\n\n", msg("a:b: c")),
    row("30-names-case-sensitive", b"Data: x\ndata: y\n\n", msg("y")),
    row("31-names-not-trimmed", b"data : x\n data: z\ndata: y\n\n", msg("y")),
    row("32-unknown-field-ignored", b"foo: bar\ndata: x\n\n", msg("x")),
    row("33-value-not-trimmed", b"event: foo \ndata: x\n\n", ("foo ", "x", "")),
    # D. data.
    row("34-multi-line-data", b"data: YHOO\ndata: +2\ndata: 10\n\n", msg("YHOO\n+2\n10")),
    row("35-empty-data", b"data:\n\n", msg("")),
    row("36-two-bare-data-fields", b"data\ndata\n\n", msg("\n")),
    row("37-one-trailing-lf-removed", b"data: a\ndata:\n\n", msg("a\n")),
    row("38-json-escapes-kept", b'data: {"t":"a\\n\\nb"}\n\n', msg('{"t":"a\\n\\nb"}')),
    # #39 and #40 small here (the every-split test is quadratic); full size below.
    row("39-long-data-line", b"data: " + b"y" * 5000 + b"\n\n", msg("y" * 5000)),
    row(
        "40-many-data-lines",
        b"".join(b"data: %d\n" % i for i in range(500)) + b"\n",
        msg("\n".join(str(i) for i in range(500))),
    ),
    # E. event.
    row("41-event-type", b"event: foo\ndata: x\n\n", ("foo", "x", "")),
    row("42-empty-event-is-message", b"event:\ndata: x\n\n", msg("x")),
    row("43-last-event-field-wins", b"event: a\nevent: b\ndata: x\n\n", ("b", "x", "")),
    row(
        "44-type-reset-after-dispatch",
        b"event: a\ndata: 1\n\ndata: 2\n\n",
        ("a", "1", ""),
        msg("2"),
    ),
    row("45-no-phantom-for-event-only", b"event: foo\n\ndata: x\n\n", msg("x")),
    # F. id.
    row(
        "46-id-is-sticky",
        b"id: 1\ndata: a\n\ndata: b\n\n",
        msg("a", "1"),
        msg("b", "1"),
        last_event_id="1",
    ),
    row("47-bare-id-resets", b"id: 1\ndata: a\n\nid\ndata: b\n\n", msg("a", "1"), msg("b", "")),
    row(
        "48-id-with-nul-ignored",
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        msg("a", "1"),
        msg("b", "1"),
        last_event_id="1",
    ),
    row("49-no-phantom-for-id-only", b"id: 5\n\ndata: b\n\n", msg("b", "5"), last_event_id="5"),
    row(
        "50-no-phantom-per-blank-line", b"id: 1\ndata: a\n\n\n\n", msg("a", "1"), last_event_id="1"
    ),
    row(
        "51-id-of-unterminated-event-never-applies",
        b"retry:1000\ndata:test1\n\nid:test\ndata:test2",
        msg("test1"),
        retry=1000,
        unterminated=True,
    ),
    row(
        "52-non-ascii-id",
        "id: \u2026\ndata: x\n\n".encode(),
        msg("x", "\u2026"),
        last_event_id="\u2026",
    ),
    # G. retry.
    row("53-retry", b"retry: 2000\n", retry=2000, unterminated=True),
    row("54-retry-decimal-not-octal", b"retry: 02000\n\n", retry=2000),
    row("55-retry-bogus", b"retry: 1000x\n\n"),
    row("56-retry-empty", b"retry:\n\n"),
    row("57-retry-leading-space", b"retry:  2000\n\n"),
    row("58-retry-minus", b"retry: -1\n\n"),
    row("58-retry-plus", b"retry: +5\n\n"),
    row("58-retry-underscore", b"retry: 1_000\n\n"),
    row("58-retry-arabic-indic-digits", "retry: \u0661\u0662\n\n".encode()),
    row("58-retry-superscript-digit", "retry: \u00b2\n\n".encode()),
    row("58-retry-decimal-point", b"retry: 1.5\n\n"),
    row("58-retry-bad-value-keeps-previous", b"retry: 7\n\nretry: 1.5\n\n", retry=7),
    row("59-retry-clamped", b"retry: 99999999999999999999\n\n", retry=MAX_RETRY_MS),
    row("59-retry-at-the-clamp", b"retry: %d\n\n" % MAX_RETRY_MS, retry=MAX_RETRY_MS),
    row("59-retry-just-over-the-clamp", b"retry: %d\n\n" % (MAX_RETRY_MS + 1), retry=MAX_RETRY_MS),
    # Past CPython's 4300-digit limit for int(str): must clamp, not raise ValueError.
    row("59-retry-5000-digits", b"retry: " + b"9" * 5000 + b"\n\n", retry=MAX_RETRY_MS),
    row("59-retry-leading-zeros", b"retry: " + b"0" * 5000 + b"15\n\n", retry=15),
    row("60-no-phantom-for-retry-only", b"retry: 10\n\ndata: b\n\n", msg("b"), retry=10),
    # H. Dispatch and end of stream.
    row("61-eof-after-lf", b"data: a\n\ndata: b\n", msg("a"), unterminated=True),
    row("62-eof-mid-line", b"data: a\n\ndata: b", msg("a"), unterminated=True),
    row("63-eof-after-cr", b"data: a\n\ndata: b\r", msg("a"), unterminated=True),
    row("64-empty-body", b""),
    row("65-dispatch-on-blank-line", b"data: a\n\n", msg("a")),
    # Not in the catalogue: the tail of a stream that is, or is not, mid-event.
    row("eof-after-comment-is-terminated", b"data: a\n\n: ping\n", msg("a")),
    row("eof-mid-comment-is-unterminated", b"data: a\n\n: pi", msg("a"), unterminated=True),
    row("eof-after-unknown-field", b"data: a\n\nfoo: 1\n", msg("a"), unterminated=True),
]


def decode(chunks: Iterable[bytes], decoder: SSEDecoder | None = None) -> list[Triple]:
    """Feed the chunks, then flush; return the events as catalogue triples."""
    decoder = decoder if decoder is not None else SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return [(event.event, event.data, event.id) for event in events]


def check(case: Row, chunks: Iterable[bytes]) -> None:
    decoder = SSEDecoder()
    assert decode(chunks, decoder) == list(case.events)
    assert decoder.last_event_id == case.last_event_id
    assert decoder.retry == case.retry
    assert decoder.unterminated is case.unterminated


def byte_at_a_time(body: bytes) -> Iterator[bytes]:
    return (body[i : i + 1] for i in range(len(body)))


# P1 and P2: every row, fed four ways.


@pytest.mark.parametrize("case", CATALOGUE)
def test_catalogue_as_chunked(case: Row) -> None:
    check(case, case.chunks)


@pytest.mark.parametrize("case", CATALOGUE)
def test_catalogue_whole_body(case: Row) -> None:
    check(case, [b"".join(case.chunks)])


@pytest.mark.parametrize("case", CATALOGUE)
def test_catalogue_byte_at_a_time(case: Row) -> None:
    check(case, byte_at_a_time(b"".join(case.chunks)))


@pytest.mark.parametrize("case", CATALOGUE)
def test_catalogue_every_split_point(case: Row) -> None:
    body = b"".join(case.chunks)
    for cut in range(len(body) + 1):
        check(case, [body[:cut], body[cut:]])


def test_events_carry_the_retry_in_force() -> None:
    body = b"data: a\n\nretry: 10\n\ndata: b\n\nretry: x\nid: 3\ndata: c\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(body) == [
        ServerSentEvent("message", "a", "", None),
        ServerSentEvent("message", "b", "", 10),
        ServerSentEvent("message", "c", "3", 10),
    ]


def test_server_sent_event_defaults_and_immutability() -> None:
    event = ServerSentEvent()
    assert (event.event, event.data, event.id, event.retry) == ("message", "", "", None)
    with pytest.raises(FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


# P5 / #15, #16, #70: an event goes out with the chunk that holds its blank line.


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"data: a\r\r", id="cr-cr"),
        pytest.param(b"data: a\n\r\n", id="lf-crlf"),
        pytest.param(b"data: a\n\n", id="lf-lf"),
        pytest.param(b"data: a\r\n\r\n", id="crlf-crlf"),
        pytest.param(b"data: a\n\r", id="lf-cr"),
    ],
)
def test_event_is_dispatched_without_waiting_for_the_next_chunk(body: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(body) == [ServerSentEvent(data="a")]
    # An LF that may complete a CRLF must not make a second blank line...
    assert decoder.feed(b"\n") == []
    # ...nor swallow anything else.
    assert decoder.feed(b"data: b\n\n") == [ServerSentEvent(data="b")]
    assert decoder.flush() == []
    assert not decoder.unterminated


def test_lf_is_swallowed_only_right_after_a_cr() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []  # an empty chunk keeps the CR in mind
    assert decoder.feed(b"\n") == []  # the LF of the CRLF, not a blank line
    assert decoder.feed(b"\n") == [ServerSentEvent(data="a")]


# P6 / P7: decoding.


def test_dangling_bytes_at_eof_do_not_raise() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n\xf0\x9f") == [ServerSentEvent(data="a")]
    assert decoder.flush() == []
    assert decoder.unterminated


def test_incomplete_bom_at_eof_does_not_raise() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.flush() == []
    assert decoder.unterminated
    assert decoder.pending_size == 1  # one U+FFFD


@pytest.mark.parametrize(
    ("chunks", "data"),
    [
        pytest.param((b"\xef\xbb", b"\xbfdata: 1\n\n"), "1", id="bom-cut-after-two-bytes"),
        pytest.param(
            (b"", b"\xef", b"", b"\xbb", b"\xbf", b"data: 1\n\n"), "1", id="bom-in-pieces"
        ),
        pytest.param((b"\xef\xbb", b"data: 1\n\n"), None, id="bom-prefix-is-not-a-bom"),
    ],
)
def test_bom_split_across_chunks(chunks: tuple[bytes, ...], data: str | None) -> None:
    # An incomplete BOM is invalid UTF-8: U+FFFD joins the field name, so nothing dispatches.
    expected = [msg(data)] if data is not None else []
    assert decode(chunks) == expected


# P8: retry.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0", 0, id="zero"),
        pytest.param("2000", 2000, id="plain"),
        pytest.param("02000", 2000, id="decimal-not-octal"),
        pytest.param(str(MAX_RETRY_MS), MAX_RETRY_MS, id="at-the-clamp"),
        pytest.param(str(MAX_RETRY_MS + 1), MAX_RETRY_MS, id="over-the-clamp"),
        pytest.param("9" * 20, MAX_RETRY_MS, id="twenty-digits"),
        pytest.param(" 2000", None, id="leading-space"),
        pytest.param("2000 ", None, id="trailing-space"),
        pytest.param("-1", None, id="minus"),
        pytest.param("+5", None, id="plus"),
        pytest.param("1_000", None, id="underscore"),
        pytest.param("\u0661\u0662", None, id="arabic-indic"),
        pytest.param("\uff11", None, id="fullwidth-digit"),
        pytest.param("1.5", None, id="decimal-point"),
        pytest.param("1e3", None, id="exponent"),
        pytest.param("0x10", None, id="hex"),
        pytest.param("", None, id="empty"),
    ],
)
def test_retry_accepts_only_ascii_digits(value: str, expected: int | None) -> None:
    decoder = SSEDecoder()
    decoder.feed(f"retry: {value}\n\n".encode())
    assert decoder.retry == expected


def test_max_retry_is_a_day() -> None:
    assert MAX_RETRY_MS == 24 * 60 * 60 * 1000


# Bookkeeping: unterminated, pending_size, a new stream after flush().


def test_pending_size_counts_data_and_the_unfinished_line() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\ndata: abc\ndata: de")
    assert decoder.pending_size == len("abc\n") + len("data: de")
    assert decoder.flush() == []
    assert decoder.unterminated
    assert decoder.pending_size == len("abc\n") + len("data: de")


def test_terminated_stream() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n")
    assert decoder.flush() == []
    assert not decoder.unterminated
    assert decoder.pending_size == 0


def test_feed_after_flush_starts_a_reconnected_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 50\nid: 1\ndata: a\n\nid: 2\nevent: x\ndata: b") == [
        ServerSentEvent("message", "a", "1", 50)
    ]
    decoder.flush()
    assert decoder.last_event_id == "1"
    # A new stream may start with a BOM again; the cut-off event, its type and its id are
    # gone; the last event ID and the retry carry over.
    assert decoder.feed(b"\xef\xbb\xbfdata: c\n\n") == [ServerSentEvent("message", "c", "1", 50)]
    assert decoder.flush() == []
    assert not decoder.unterminated


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        SSEDecoder(max_event_size=-1)
    with pytest.raises(ValueError):
        SSEDecoder(max_line_size=-1)


# #39, #40, #68, #73, L3: large inputs (correctness only: timings live in benchmarks/).


def test_huge_single_event_in_64k_chunks() -> None:
    size = 50 * 1024 * 1024
    body = b"event: big\ndata: " + b"z" * size + b"\n\n"
    decoder = SSEDecoder(max_event_size=size)
    events: list[ServerSentEvent] = []
    step = 64 * 1024
    for start in range(0, len(body), step):
        events.extend(decoder.feed(body[start : start + step]))
    assert len(events) == 1
    assert events[0].event == "big"
    assert len(events[0].data) == size
    assert events[0].data.count("z") == size


def test_many_data_lines_in_small_chunks() -> None:
    body = b"".join(b"data: %d\n" % i for i in range(80_000)) + b"\n"
    expected = "\n".join(str(i) for i in range(80_000))
    assert decode(body[i : i + 1000] for i in range(0, len(body), 1000)) == [msg(expected)]


def test_100k_events_in_one_chunk() -> None:
    body = b"".join(b'event: content-delta\ndata: {"i": %d}\n\n' % i for i in range(100_000))
    events = SSEDecoder().feed(body)
    assert len(events) == 100_000
    assert events[0] == ServerSentEvent("content-delta", '{"i": 0}')
    assert events[-1] == ServerSentEvent("content-delta", '{"i": 99999}')


def test_a_million_comment_lines_give_no_events() -> None:
    decoder = SSEDecoder(max_line_size=1)
    assert decoder.feed(b":\n" * 1_000_000) == []
    assert decoder.feed(b":\r" * 1000 + b":\r\n" * 1000) == []
    assert decoder.flush() == []
    assert not decoder.unterminated


@pytest.mark.parametrize(
    "prefix",
    [pytest.param(b":", id="comment"), pytest.param(b"foo: ", id="ignored-field")],
)
def test_long_ignored_lines_are_not_buffered(prefix: bytes) -> None:
    piece = b"c" * (64 * 1024)
    decoder = SSEDecoder(max_event_size=1024)
    decoder.feed(prefix)
    tracemalloc.start()
    try:
        for _ in range(256):  # 16 MiB
            decoder.feed(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Each chunk is decoded (64 KiB of text) and dropped; nothing accumulates.
    assert peak < 1024 * 1024
    assert decoder.feed(b"\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_long_comment_line_25_at_full_size() -> None:
    body = b": " + b"k" * 65536 + b"\ndata: x\n\n"
    assert decode([body]) == [msg("x")]
    assert decode([body], SSEDecoder(max_line_size=65538)) == [msg("x")]
    with pytest.raises(LineTooLargeError):
        decode([body], SSEDecoder(max_line_size=65537))


# J / L4: size limits.


def test_event_too_large_raises_at_the_chunk_that_crosses_the_limit() -> None:
    decoder = SSEDecoder(max_event_size=10_000)
    assert decoder.feed(b"event: big\ndata: ") == []
    fed = 0
    with pytest.raises(EventTooLargeError) as caught:
        for _ in range(1000):
            decoder.feed(b"x" * 1000)
            fed += 1
    assert fed == 10  # 10,000 characters are allowed; the 11th chunk crosses the limit
    error = caught.value
    assert error.limit == 10_000
    assert error.size > 10_000
    assert "xxxx" not in str(error)  # sizes, never content
    # The decoder stays failed: nothing more is buffered.
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"x")
    with pytest.raises(EventTooLargeError):
        decoder.flush()


def test_event_just_under_the_limit_passes() -> None:
    decoder = SSEDecoder(max_event_size=10_000)
    body = b"data: " + b"x" * 10_000 + b"\n\n"
    assert decode(byte_at_a_time(body), decoder) == [msg("x" * 10_000)]
    assert decode([body], SSEDecoder(max_event_size=10_000)) == [msg("x" * 10_000)]
    with pytest.raises(EventTooLargeError):
        decode([b"data: " + b"x" * 10_001 + b"\n\n"], SSEDecoder(max_event_size=10_000))


@pytest.mark.parametrize(
    ("body", "fits"),
    [
        pytest.param(b"data: ab\ndata: cd\n\n", True, id="lines-and-lf-count-5"),
        pytest.param(b"data: ab\ndata: cde\n\n", False, id="6-is-too-many"),
        pytest.param(b"data:abcde\n\n", True, id="no-space-5"),
        pytest.param(b"data:abcdef\n\n", False, id="no-space-6"),
        pytest.param(b"data\ndata\ndata\ndata\ndata\ndata\n\n", True, id="five-lfs"),
        pytest.param(b"data\ndata\ndata\ndata\ndata\ndata\ndata\n\n", False, id="six-lfs"),
        pytest.param(b"event: abcde\ndata: x\n\n", True, id="type-5"),
        pytest.param(b"event: abcdef\ndata: x\n\n", False, id="type-6"),
        pytest.param(b"id: abcdef\n\n", False, id="id-6"),
        pytest.param(b"retry: 000001\n\n", False, id="retry-6"),
        pytest.param(b": " + b"c" * 100 + b"\ndata: x\n\n", True, id="comments-do-not-count"),
        pytest.param(b"foo: " + b"c" * 100 + b"\ndata: x\n\n", True, id="ignored-fields-do-not"),
        pytest.param(b"data: abc\n\ndata: abc\n\n", True, id="per-event"),
    ],
)
def test_event_size_limit(body: bytes, fits: bool) -> None:
    for chunks in ([body], list(byte_at_a_time(body))):
        decoder = SSEDecoder(max_event_size=5)
        if fits:
            decode(chunks, decoder)
        else:
            with pytest.raises(EventTooLargeError):
                decode(chunks, decoder)


def test_events_before_the_limit_in_the_same_chunk_are_not_lost() -> None:
    decoder = SSEDecoder(max_event_size=5)
    assert decoder.feed(b"data: a\n\ndata: b\n\ndata: 0123456789") == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data="b"),
    ]
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"more")
    with pytest.raises(EventTooLargeError):
        decoder.flush()


def test_events_before_a_long_line_in_the_same_chunk_are_not_lost() -> None:
    decoder = SSEDecoder(max_line_size=10)
    assert decoder.feed(b"data: a\n\n:" + b"c" * 20 + b"\ndata: b\n\n") == [
        ServerSentEvent(data="a")
    ]
    with pytest.raises(LineTooLargeError):
        decoder.flush()


@pytest.mark.parametrize(
    ("line", "fits"),
    [
        pytest.param(b"data: abcd", True, id="data-10"),
        pytest.param(b"data: abcde", False, id="data-11"),
        pytest.param(b":" + b"c" * 9, True, id="comment-10"),
        pytest.param(b":" + b"c" * 10, False, id="comment-11"),
        pytest.param(b"foo: " + b"c" * 6, False, id="ignored-field-11"),
        pytest.param(b"data: abcd\r", True, id="cr-not-counted"),
    ],
)
def test_line_size_limit(line: bytes, fits: bool) -> None:
    body = line + b"\r\n\n"
    for chunks in ([body], list(byte_at_a_time(body))):
        decoder = SSEDecoder(max_line_size=10)
        if fits:
            decode(chunks, decoder)
        else:
            with pytest.raises(LineTooLargeError) as caught:
                decode(chunks, decoder)
            assert caught.value.limit == 10


def test_endless_line_raises_once_past_the_line_limit() -> None:
    decoder = SSEDecoder(max_line_size=1000)
    fed = 0
    with pytest.raises(LineTooLargeError) as caught:
        for _ in range(1000):
            decoder.feed(b"data: xxx" if fed == 0 else b"x" * 100)
            fed += 1
    assert fed == 10  # 9 + 9 * 100 = 909 characters fit; 1009 do not
    assert caught.value.size == 1009


def test_endless_line_without_line_limit_is_bounded_by_event_size() -> None:
    decoder = SSEDecoder(max_event_size=1000)
    with pytest.raises(EventTooLargeError):
        for _ in range(1000):
            decoder.feed(b"data: " + b"x" * 100)


@pytest.mark.parametrize("name", [b"event", b"id", b"retry"])
def test_endless_kept_field_value_is_bounded_by_event_size(name: bytes) -> None:
    decoder = SSEDecoder(max_event_size=1000)
    decoder.feed(name + b": ")
    fed = 0
    with pytest.raises(EventTooLargeError):
        for _ in range(1000):
            decoder.feed(b"9" * 100)
            fed += 1
    assert fed == 10


# P3: round trip of generated streams.

COHERE_TYPES = [
    "message-start",
    "content-start",
    "content-delta",
    "content-end",
    "tool-plan-delta",
    "tool-call-start",
    "tool-call-delta",
    "tool-call-end",
    "citation-start",
    "citation-end",
    "message-end",
    "debug",
]

one_line_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
data_text = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\u2028", "\u2029", "\x85", "\x00", "\U0001f600", "\n", "\r", " ", ":"]),
    ),
    max_size=30,
)
generated_events = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(COHERE_TYPES), one_line_text),
        data_text,
        st.one_of(st.none(), one_line_text),
    ),
    max_size=6,
)


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[bytes, list[Triple], str]:
    """Serialise random events in random but valid ways; return the body and the oracle."""
    lines: list[str] = []
    expected: list[Triple] = []
    last_event_id = ""

    def field(name: str, value: str) -> str:
        # "name:value" would lose a leading space of the value; "name: value" never does.
        if value.startswith(" ") or draw(st.booleans()):
            return f"{name}: {value}"
        return f"{name}:{value}"

    for event_type, data, event_id in draw(generated_events):
        if draw(st.booleans()):
            lines.append(":" + draw(one_line_text))
        if event_id is not None:
            lines.append(field("id", event_id))
            if "\0" not in event_id:
                last_event_id = event_id
        if event_type != "message" or draw(st.booleans()):
            lines.append(field("event", event_type))
        # A CR or CRLF inside the data can only travel as a line end: it comes back as LF.
        parts = re.split("\r\n|\r|\n", data)
        lines.extend(field("data", part) for part in parts)
        lines.extend([""] * draw(st.integers(1, 3)))
        expected.append((event_type or "message", "\n".join(parts), last_event_id))

    text = []
    after_cr = False
    for line in lines:
        # After a CR, an LF ending an empty line would make a CRLF: one line end, not two.
        ends = ["\r", "\r\n"] if after_cr and not line else ["\n", "\r", "\r\n"]
        end = draw(st.sampled_from(ends))
        text.append(line + end)
        after_cr = end == "\r"
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + "".join(text).encode(), expected, last_event_id


def cut(body: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(point, len(body)) for point in points), len(body)]
    return [body[start:end] for start, end in pairwise(bounds)]


@settings(max_examples=1000, deadline=None)
@given(stream=event_streams(), points=st.lists(st.integers(0, 2000), max_size=12))
def test_round_trip_any_chunking(
    stream: tuple[bytes, list[Triple], str], points: list[int]
) -> None:
    body, expected, last_event_id = stream
    decoder = SSEDecoder()
    assert decode(cut(body, points), decoder) == expected
    assert decode([body]) == expected
    assert decoder.last_event_id == last_event_id
    assert not decoder.unterminated


# P4: arbitrary bytes.

TOKENS = [
    b"data",
    b"event",
    b"id",
    b"retry",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"1",
    b"x",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xe2\x82",
    b"\xac",
    b"\xff",
]
noisy_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(TOKENS), max_size=80).map(b"".join),
)

Outcome = tuple[list[ServerSentEvent], bool, str, int | None, bool, int]


def outcome(chunks: Iterable[bytes], max_event_size: int, max_line_size: int | None) -> Outcome:
    decoder = SSEDecoder(max_event_size=max_event_size, max_line_size=max_line_size)
    events: list[ServerSentEvent] = []
    try:
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
        events.extend(decoder.flush())
    except (EventTooLargeError, LineTooLargeError):
        return events, True, "", None, False, 0
    state = (decoder.last_event_id, decoder.retry, decoder.unterminated, decoder.pending_size)
    return (events, False, *state)


@settings(max_examples=1500, deadline=None)
@given(
    body=noisy_bytes,
    points=st.lists(st.integers(0, 250), max_size=12),
    max_event_size=st.one_of(st.integers(0, 30), st.just(16 * 1024 * 1024)),
    max_line_size=st.one_of(st.none(), st.integers(0, 30)),
)
def test_arbitrary_bytes_are_split_invariant(
    body: bytes, points: list[int], max_event_size: int, max_line_size: int | None
) -> None:
    # Only the size limits may raise; which of the two fires first when one line breaks
    # both can depend on the chunking, so the outcome compares "raised or not" only.
    whole = outcome([body], max_event_size, max_line_size)
    assert outcome(cut(body, points), max_event_size, max_line_size) == whole
    assert outcome(byte_at_a_time(body), max_event_size, max_line_size) == whole
