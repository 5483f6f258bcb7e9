"""Crafted HTTP/1.1 responses for the differential transport test, each one exact bytes.

Every streaming case starts from one valid Cohere V2 stream (``cohere-v2-stream.md`` §1-§3:
message-start, content-start, three content-delta, content-end, message-end, then
``data: [DONE]``), :data:`SSE`, and changes one thing about how it is
framed: the status line, a header, the chunked coding (RFC 9112 §7.1), Content-Length
(RFC 9110 §8.6), the content coding (RFC 9110 §8.4), or what follows ``[DONE]``.

A case's :attr:`HttpCase.expect` is the outcome every transport must have where the right
answer is known (a complete stream, or an error class), so that the test fails if the
httpx path itself misbehaves; None leaves it to the comparison of each transport with
httpx-async.
"""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit import errors as E
from tests.raw_server import Reply, Then

__all__ = [
    "CASES",
    "CHUNKED",
    "COMPLETE",
    "EVENT_TYPES",
    "SSE",
    "SSE_EVENTS",
    "SSE_TYPE",
    "Difference",
    "Expect",
    "HttpCase",
    "chunked",
    "fails",
    "head",
]

# ----------------------------------------------------------------------------- the stream

_EVENTS: list[dict[str, Any]] = [
    {
        "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
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
    },
    {
        "type": "content-start",
        "index": 0,
        "delta": {"message": {"content": {"type": "text", "text": ""}}},
    },
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "The"}}}},
    {
        "type": "content-delta",
        "index": 0,
        "delta": {"message": {"content": {"text": " capital is"}}},
    },
    {
        "type": "content-delta",
        "index": 0,
        "delta": {"message": {"content": {"text": " Paris, « ville lumière »."}}},
    },
    {"type": "content-end", "index": 0},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "COMPLETE",
            "usage": {
                "billed_units": {"input_tokens": 8, "output_tokens": 12},
            },
        },
    },
]


def _compact(event: dict[str, Any]) -> bytes:
    """JSON as Cohere sends it: compact, raw UTF-8."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


SSE_EVENTS: tuple[bytes, ...] = (
    *(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), _compact(e)) for e in _EVENTS),
    b"data: [DONE]\n\n",
)
"""The stream's SSE events as Cohere frames them, ``[DONE]`` last."""

SSE = b"".join(SSE_EVENTS)
"""The whole valid body."""

_N = len(SSE)

EVENT_TYPES: tuple[str, ...] = tuple(e["type"] for e in _EVENTS)
"""The event types a complete read of :data:`SSE` delivers."""

_BEFORE_END = b"".join(SSE_EVENTS[:-2])
"""Every event but message-end and ``[DONE]``."""


# ----------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Expect:
    """What the httpx path must do with a case.

    Attributes:
        events: The event types it must deliver, or None for any.
        error: The class (or base class) of the error it must end with; None for success.
    """

    events: tuple[str, ...] | None
    error: type[BaseException] | None

    def __str__(self) -> str:
        if self.error is None:
            return "complete"
        return self.error.__name__ + (f" after {list(self.events)}" if self.events else "")


COMPLETE = Expect(EVENT_TYPES, None)
"""Every event, then a normal completion."""


def fails(error: type[BaseException], events: tuple[str, ...] | None = None) -> Expect:
    return Expect(events, error)


# ----------------------------------------------------------------------------- framing helpers

SSE_TYPE = b"Content-Type: text/event-stream"
CHUNKED = b"Transfer-Encoding: chunked"
OK = b"HTTP/1.1 200 OK"


def head(*headers: bytes, status: bytes = OK) -> bytes:
    """A response head: the status line, the header lines, the blank line."""
    return b"".join(line + b"\r\n" for line in (status, *headers)) + b"\r\n"


def _hex(size: int) -> bytes:
    return b"%x" % size


def chunked(
    pieces: tuple[bytes, ...] = SSE_EVENTS,
    *,
    size: Callable[[int], bytes] = _hex,
    line_end: bytes = b"\r\n",
    data_end: bytes = b"\r\n",
    last: bytes = b"0\r\n\r\n",
) -> bytes:
    """The pieces in chunked coding: one chunk each, then ``last`` (the last-chunk)."""
    return b"".join(size(len(p)) + line_end + p + data_end for p in pieces if p) + last


def _stream(*headers: bytes, status: bytes = OK) -> bytes:
    """A 200 SSE head with chunked framing, plus ``headers``."""
    return head(SSE_TYPE, CHUNKED, *headers, status=status)


def _length(body: bytes, length: bytes | None = None, *headers: bytes) -> bytes:
    value = b"%d" % len(body) if length is None else length
    return head(SSE_TYPE, b"Content-Length: " + value, *headers) + body


def _split(data: bytes, every: int) -> tuple[bytes, ...]:
    return tuple(data[i : i + every] for i in range(0, len(data), every))


def _underscored(digits: bytes) -> bytes:
    """``b"836"`` as ``b"8_3_6"``: Python's int() accepts it, HTTP does not."""
    return b"_".join(digits[i : i + 1] for i in range(len(digits)))


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zlib(data: bytes) -> bytes:
    return zlib.compress(data)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _corrupt(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _json_error(status: bytes, body: dict[str, Any]) -> bytes:
    raw = json.dumps(body).encode()
    return (
        head(b"Content-Type: application/json", b"Content-Length: %d" % len(raw), status=status)
        + raw
    )


@functools.cache
def gzip_bomb() -> bytes:
    """About 250 KB of gzip that expands to 256 MiB: two real events, then one endless line.

    A client that inflates it all at once, or buffers the line, needs hundreds of MB; the
    decoder's ``max_event_size`` (16 MiB by default) must stop it long before.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(SSE_EVENTS[0] + SSE_EVENTS[1] + b"data: ")]
    block = b"a" * (1 << 20)
    parts.extend(compressor.compress(block) for _ in range(256))
    parts.append(compressor.flush())
    return b"".join(parts)


# ----------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Difference:
    """A known, documented difference of one parser from h11 on one case.

    Attributes:
        expect: The outcome that parser must have instead.
        why: Why the difference is harmless (it is never a weaker check of the framing).
    """

    expect: Expect
    why: str


@dataclass(frozen=True)
class HttpCase:
    """One crafted response and, where known, what every transport must make of it.

    Attributes:
        id: The pytest id.
        reply: The bytes, their segments and what the connection does after them, or a
            function building it (for a case too costly to build at import).
        expect: The outcome every transport must have (the httpx paths only, with
            ``only_httpx``), or None to compare the transports with httpx-async alone.
        why: What the case is about, when the id does not say it all.
    """

    id: str
    reply: Reply | Callable[[], Reply]
    expect: Expect | None = None
    why: str = ""
    only_httpx: bool = False
    """The expectation binds the two httpx paths only; elsewhere the comparison rules."""
    llhttp: Difference | None = None
    """Where llhttp (``native-httptools``) knowingly differs from h11: its outcome, and why."""
    memory: bool = False
    """True for the gzip bomb: the test also bounds the memory each transport allocates."""

    def build(self) -> Reply:
        return self.reply if isinstance(self.reply, Reply) else self.reply()


def _case(
    id: str,
    *segments: bytes,
    then: Then = "close",
    gap: float = 0.0,
    expect: Expect | None = None,
    only_httpx: bool = False,
    why: str = "",
    llhttp: Difference | None = None,
) -> HttpCase:
    return HttpCase(id, Reply(segments, then, gap), expect, why, only_httpx, llhttp)


_STREAM = _stream()
_CHUNKED_BODY = chunked()
_STREAM_INTERRUPTED = fails(E.StreamInterruptedError)
_NO_ANSWER = fails(E.APIConnectionError, ())
"""A response that is no HTTP response: an error before any event."""
_TRUNCATED = fails(E.StreamError)
_FRAMING_ERROR = fails(E.StreamkitError, ())
"""Framing that cannot be trusted: a typed error, and no event from it."""


def _llhttp_refuses(why: str) -> Difference:
    """llhttp's strict mode refuses a head h11 accepts: no answer, before any event."""
    return Difference(_NO_ANSWER, why)


CASES: list[HttpCase] = [
    # --------------------------------------------------------------- chunked coding
    _case("chunked-one-chunk-per-event", _STREAM + _CHUNKED_BODY, expect=COMPLETE),
    _case("chunked-one-chunk", _STREAM + chunked((SSE,)), expect=COMPLETE),
    _case(
        "chunked-7-byte-reads",
        *_split(_STREAM + _CHUNKED_BODY, 7)[:40],
        b"".join(_split(_STREAM + _CHUNKED_BODY, 7)[40:]),
        gap=0.001,
        expect=COMPLETE,
        why="sizes, CRLFs and the head split across reads",
    ),
    _case(
        "chunked-crlf-split",
        _STREAM,
        *(
            piece
            for event in SSE_EVENTS
            for piece in (b"%x\r" % len(event), b"\n" + event + b"\r", b"\n")
        ),
        b"0\r",
        b"\n\r",
        b"\n",
        gap=0.001,
        expect=COMPLETE,
    ),
    _case(
        "chunk-size-0x-prefix",
        _STREAM + b"0x%x\r\n" % _N + SSE + b"\r\n0\r\n\r\n",
        expect=_FRAMING_ERROR,
    ),
    _case(
        "chunk-size-underscores",
        _STREAM + _underscored(b"%x" % _N) + b"\r\n" + SSE + b"\r\n0\r\n\r\n",
        expect=_FRAMING_ERROR,
    ),
    _case(
        "chunk-size-plus", _STREAM + b"+%x\r\n" % _N + SSE + b"\r\n0\r\n\r\n", expect=_FRAMING_ERROR
    ),
    _case(
        "chunk-size-minus-1", _STREAM + b"-1\r\n" + SSE + b"\r\n0\r\n\r\n", expect=_FRAMING_ERROR
    ),
    _case(
        "chunk-size-40-hex-digits",
        _STREAM + b"%040x\r\n" % len(SSE) + SSE + b"\r\n0\r\n\r\n",
        expect=_FRAMING_ERROR,
        why="h11 allows at most 20 hex digits",
        llhttp=Difference(
            COMPLETE,
            "llhttp takes any number of leading zeros (RFC 9112 §7.1: chunk-size = 1*HEXDIG),"
            " and httptools shows no chunk-size line to check: the value is still exact, and"
            " one past 64 bits is refused (chunk-size-40-hex-digits-huge)",
        ),
    ),
    _case(
        "chunk-size-40-hex-digits-huge",
        _STREAM + b"f" * 40 + b"\r\n" + SSE + b"\r\n0\r\n\r\n",
        expect=_FRAMING_ERROR,
    ),
    _case(
        "chunk-size-16-hex-digits",
        _STREAM + chunked(size=lambda n: b"%016x" % n),
        expect=COMPLETE,
        why="leading zeros are 1*HEXDIG",
    ),
    _case(
        "chunk-size-uppercase-hex",
        _STREAM + chunked(size=lambda n: b"%X" % n),
        expect=COMPLETE,
    ),
    _case(
        "chunk-size-lowercase-hex",
        _STREAM + chunked(size=lambda n: b"%x" % n),
        expect=COMPLETE,
    ),
    _case(
        "chunk-size-leading-space",
        _STREAM + chunked(size=lambda n: b" %x" % n),
        expect=_FRAMING_ERROR,
    ),
    _case(
        "chunk-extension",
        _STREAM + chunked(size=lambda n: b"%x;name=value" % n),
        expect=COMPLETE,
    ),
    _case(
        "chunk-extension-quoted",
        _STREAM + chunked(size=lambda n: b'%x;a=1;b="x y"' % n),
        expect=COMPLETE,
    ),
    _case("chunk-line-bare-lf", _STREAM + chunked(line_end=b"\n")),
    _case("chunk-data-end-bare-lf", _STREAM + chunked(data_end=b"\n")),
    _case(
        "chunk-data-missing-crlf",
        _STREAM + chunked(data_end=b""),
        expect=_STREAM_INTERRUPTED,
        why="the next size line runs into the data: RFC 9112 §7.1 requires the CRLF",
    ),
    _case(
        "chunk-longer-than-size",
        _STREAM + b"%x\r\n" % (len(SSE_EVENTS[0]) - 10) + SSE_EVENTS[0] + b"\r\n0\r\n\r\n",
        expect=fails(E.StreamkitError),
    ),
    _case(
        "chunk-shorter-than-size",
        _STREAM + b"%x\r\n" % (len(SSE_EVENTS[0]) + 10) + SSE_EVENTS[0] + b"\r\n" + _CHUNKED_BODY,
        expect=fails(E.StreamkitError),
    ),
    _case(
        "chunked-trailer",
        _STREAM + chunked(last=b"0\r\nX-Checksum: abc\r\n\r\n"),
        expect=COMPLETE,
    ),
    _case(
        "chunked-trailers-many",
        _STREAM + chunked(last=b"0\r\nX-A: 1\r\nX-B: 2\r\nServer-Timing: x;dur=1\r\n\r\n"),
        expect=COMPLETE,
    ),
    _case(
        "chunked-no-last-chunk-after-done",
        _STREAM + chunked(last=b""),
        expect=COMPLETE,
        why="[DONE] came: the missing last-chunk does not matter",
    ),
    _case(
        "chunked-no-last-chunk-after-message-end",
        _STREAM + chunked(SSE_EVENTS[:-1], last=b""),
        why="message-end came, then the body broke off without its last-chunk",
    ),
    _case(
        "chunked-no-last-chunk-before-message-end",
        _STREAM + chunked(SSE_EVENTS[:-2], last=b""),
        expect=fails(E.StreamInterruptedError, EVENT_TYPES[:-1]),
    ),
    _case(
        "chunked-huge-size-then-close",
        _STREAM + b"ffffffffffffffff\r\n" + SSE_EVENTS[0],
        expect=_STREAM_INTERRUPTED,
    ),
    # --------------------------------------------------------------- Transfer-Encoding
    _case(
        "te-xchunkedx",
        head(SSE_TYPE, b"Transfer-Encoding: xchunkedx") + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
    ),
    _case(
        "te-chunked-chunked",
        head(SSE_TYPE, b"Transfer-Encoding: chunked, chunked") + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
    ),
    _case(
        "te-two-chunked-headers",
        head(SSE_TYPE, CHUNKED, CHUNKED) + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
    ),
    _case(
        "te-gzip-chunked",
        head(SSE_TYPE, b"Transfer-Encoding: gzip, chunked") + chunked((_gzip(SSE),)),
        expect=_FRAMING_ERROR,
    ),
    _case(
        "te-uppercase-chunked",
        head(SSE_TYPE, b"Transfer-Encoding: CHUNKED") + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    _case(
        "te-chunked-and-content-length",
        head(SSE_TYPE, CHUNKED, b"Content-Length: 5") + _CHUNKED_BODY,
        why="RFC 9112 §6.3: a sender must not send both; Transfer-Encoding wins if accepted",
        llhttp=_llhttp_refuses(
            "RFC 9112 §6.3 lets a client either drop Content-Length or refuse; llhttp refuses"
            " (the smuggling-safe choice)"
        ),
    ),
    _case(
        "te-gzip-alone",
        head(SSE_TYPE, b"Transfer-Encoding: gzip") + _gzip(SSE),
        expect=_FRAMING_ERROR,
        why="llhttp would read it to the close; only chunked is accepted, as by h11",
    ),
    _case(
        "te-identity",
        head(SSE_TYPE, b"Transfer-Encoding: identity") + SSE,
        expect=_FRAMING_ERROR,
    ),
    # --------------------------------------------------------------- Content-Length
    _case("content-length", _length(SSE), expect=COMPLETE),
    _case("content-length-plus", _length(SSE, b"+%d" % _N), expect=_FRAMING_ERROR),
    _case(
        "content-length-underscores", _length(SSE, _underscored(b"%d" % _N)), expect=_FRAMING_ERROR
    ),
    _case(
        "content-length-list-same",
        _length(SSE, b"%d, %d" % (_N, _N)),
        llhttp=_llhttp_refuses(
            "RFC 9110 §8.6 lets a recipient accept a list of equal values or refuse it;"
            " llhttp allows digits only"
        ),
    ),
    _case(
        "content-length-list-differ", _length(SSE, b"%d, %d" % (_N, _N + 1)), expect=_FRAMING_ERROR
    ),
    _case(
        "content-length-two-headers-differ",
        head(SSE_TYPE, b"Content-Length: %d" % _N, b"Content-Length: %d" % (_N + 1)) + SSE,
        expect=_FRAMING_ERROR,
    ),
    _case("content-length-30-digits", _length(SSE, b"%030d" % _N), expect=_FRAMING_ERROR),
    _case("content-length-negative", _length(SSE, b"-%d" % _N), expect=_FRAMING_ERROR),
    _case("content-length-leading-zeros", _length(SSE, b"000%d" % _N), expect=COMPLETE),
    _case(
        "content-length-huge-after-done",
        _length(SSE, b"9" * 19),
        expect=COMPLETE,
        why="the body is short, but [DONE] came: what follows it does not matter",
    ),
    _case(
        "content-length-longer-than-body",
        _length(_BEFORE_END, b"%d" % len(SSE)),
        expect=fails(E.StreamInterruptedError, EVENT_TYPES[:-1]),
    ),
    _case(
        "content-length-shorter-than-body",
        _length(SSE, b"%d" % (_N - 5)),
        expect=COMPLETE,
        why="the length ends the body inside [DONE], after message-end",
    ),
    _case(
        "content-length-cuts-an-event",
        _length(SSE, b"%d" % (len(_BEFORE_END) + 30)),
        expect=fails(E.StreamTruncatedError, EVENT_TYPES[:-1]),
    ),
    _case("content-length-zero", _length(b""), expect=fails(E.StreamTruncatedError, ())),
    _case("read-to-close-http11", head(SSE_TYPE) + SSE, expect=COMPLETE),
    _case("read-to-close-http10", head(SSE_TYPE, status=b"HTTP/1.0 200 OK") + SSE, expect=COMPLETE),
    _case(
        "read-to-close-truncated-mid-event",
        head(SSE_TYPE) + SSE[: len(_BEFORE_END) + 30],
        expect=fails(E.StreamTruncatedError, EVENT_TYPES[:-1]),
    ),
    _case(
        "http10-content-length",
        head(SSE_TYPE, b"Content-Length: %d" % _N, status=b"HTTP/1.0 200 OK") + SSE,
        expect=COMPLETE,
    ),
    # --------------------------------------------------------------- header lines
    _case(
        "header-name-with-space",
        _stream(b"X Served By: cache") + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
    ),
    _case(
        "header-name-space-before-colon",
        _stream(b"X-Served-By : cache") + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
        why="RFC 9112 §5.1: no whitespace between the field name and the colon",
    ),
    _case(
        "header-name-control-char",
        _stream(b"X-Ser\x01ved: cache") + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
    ),
    _case(
        "header-line-no-colon", _stream(b"X-Served-By cache") + _CHUNKED_BODY, expect=_FRAMING_ERROR
    ),
    _case(
        "header-value-nul",
        _stream(b"X-Served-By: ca\x00che") + _CHUNKED_BODY,
        expect=_FRAMING_ERROR,
    ),
    _case(
        "header-value-cr", _stream(b"X-Served-By: ca\rche") + _CHUNKED_BODY, expect=_FRAMING_ERROR
    ),
    _case(
        "header-value-latin-1",
        _stream(b"X-Served-By: cache-z\xfcrich") + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    _case(
        "header-value-utf-8",
        _stream("X-Served-By: cache-zürich".encode()) + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    _case(
        "header-obs-fold",
        _stream(b"X-Served-By: cache,", b"  zurich") + _CHUNKED_BODY,
        why="RFC 9112 §5.2: a client may replace obs-fold with spaces, or reject it",
        llhttp=_llhttp_refuses("llhttp rejects obs-fold outside its lenient mode"),
    ),
    _case("header-8-kb", _stream(b"X-Big: " + b"x" * 8192) + _CHUNKED_BODY, expect=COMPLETE),
    _case(
        "header-200-kb",
        _stream(b"X-Big: " + b"x" * 200_000) + _CHUNKED_BODY,
        expect=_NO_ANSWER,
    ),
    _case(
        "header-200-kb-in-40-reads-then-hold",
        _stream()[:-2] + b"X-Big: ",
        *(b"x" * 5000,) * 40,
        then="hold",
        gap=0.002,
        expect=_NO_ANSWER,
        why="a header line that never ends, read by read: refused past a limit (64 KiB natively)",
    ),
    _case(
        "header-value-trailing-spaces",
        head(b"Content-Type: text/event-stream  \t ", CHUNKED) + _CHUNKED_BODY,
        expect=COMPLETE,
        why="RFC 9110 §5.5: the whitespace around a field value is not part of it",
    ),
    _case(
        "head-bare-lf",
        b"HTTP/1.1 200 OK\nContent-Type: text/event-stream\nTransfer-Encoding: chunked\n\n"
        + _CHUNKED_BODY,
        llhttp=_llhttp_refuses(
            "RFC 9112 §2.2 lets a recipient accept a bare LF; llhttp requires CRLF outside its"
            " lenient mode"
        ),
    ),
    # --------------------------------------------------------------- status line
    _case("status-http-1x", _stream(status=b"HTTP/1.x 200 OK") + _CHUNKED_BODY, expect=_NO_ANSWER),
    _case("status-http-2", _stream(status=b"HTTP/2.0 200 OK") + _CHUNKED_BODY),
    _case(
        "status-reason-nul",
        _stream(status=b"HTTP/1.1 200 O\x00K") + _CHUNKED_BODY,
        expect=_NO_ANSWER,
    ),
    _case(
        "status-reason-control-char",
        _stream(status=b"HTTP/1.1 200 O\x01K") + _CHUNKED_BODY,
        llhttp=_llhttp_refuses(
            "RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); h11 lets other"
            " control characters than NUL through, the llhttp reader checks the parsed phrase"
        ),
    ),
    _case(
        "status-line-after-empty-line",
        b"\r\n" + _STREAM + _CHUNKED_BODY,
        expect=_NO_ANSWER,
        why="llhttp skips empty lines before a message; the llhttp reader refuses them, as h11",
    ),
    _case("status-no-reason", _stream(status=b"HTTP/1.1 200") + _CHUNKED_BODY, expect=COMPLETE),
    _case("status-empty-reason", _stream(status=b"HTTP/1.1 200 ") + _CHUNKED_BODY, expect=COMPLETE),
    _case("status-099", _stream(status=b"HTTP/1.1 099 Odd") + _CHUNKED_BODY, expect=_FRAMING_ERROR),
    _case("status-1000", _stream(status=b"HTTP/1.1 1000 Odd") + _CHUNKED_BODY, expect=_NO_ANSWER),
    _case("status-2OO", _stream(status=b"HTTP/1.1 2OO OK") + _CHUNKED_BODY, expect=_NO_ANSWER),
    _case(
        "status-lowercase-http",
        _stream(status=b"http/1.1 200 OK") + _CHUNKED_BODY,
        expect=_NO_ANSWER,
    ),
    # --------------------------------------------------------------- interim answers
    _case(
        "continue-100-once",
        b"HTTP/1.1 100 Continue\r\n\r\n" + _STREAM + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    _case(
        "continue-100-three-segments",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 10",
        b"0 Continue\r\n\r\n" + _STREAM + _CHUNKED_BODY,
        gap=0.001,
        expect=COMPLETE,
    ),
    _case(
        "continue-100-x5000",
        b"HTTP/1.1 100 Continue\r\n\r\n" * 5000 + _STREAM + _CHUNKED_BODY,
        expect=COMPLETE,
        why="5,000 interim answers in one read: no recursion, no quadratic re-scan",
    ),
    _case(
        "continue-100-then-empty-line",
        b"HTTP/1.1 100 Continue\r\n\r\n\r\n" + _STREAM + _CHUNKED_BODY,
        expect=_NO_ANSWER,
        llhttp=Difference(
            COMPLETE,
            "llhttp skips empty lines between messages (RFC 9112 §2.2's robustness rule) and"
            " httptools shows no position to refuse them by; the next head is still parsed"
            " whole and strictly, so no framing is guessed",
        ),
    ),
    _case(
        "switching-protocols-101-unasked",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        + _STREAM
        + _CHUNKED_BODY,
        expect=fails(E.StreamkitError, ()),
        why="no upgrade was asked for: what follows is not this protocol",
    ),
    _case(
        "early-hints-103",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + _STREAM
        + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    # --------------------------------------------------------------- no-body and error answers
    _case(
        "status-204",
        head(status=b"HTTP/1.1 204 No Content"),
        expect=fails(E.NotEventStreamError, ()),
    ),
    _case(
        "status-204-sse-with-stray-body",
        head(SSE_TYPE, status=b"HTTP/1.1 204 No Content") + SSE,
        expect=fails(E.StreamTruncatedError, ()),
        why="a 204 has no body whatever follows (RFC 9110 §15.3.5)",
    ),
    _case(
        "status-304",
        head(b"Content-Length: %d" % _N, status=b"HTTP/1.1 304 Not Modified"),
        expect=fails(E.APIStatusError, ()),
    ),
    _case(
        "error-401-json",
        _json_error(b"HTTP/1.1 401 Unauthorized", {"message": "invalid api token"}),
        expect=fails(E.UnauthorizedError, ()),
    ),
    _case(
        "error-429-json-chunked",
        head(b"Content-Type: application/json", CHUNKED, status=b"HTTP/1.1 429 Too Many Requests")
        + chunked((b'{"message":', b'"slow down"}')),
        expect=fails(E.RateLimitError, ()),
    ),
    _case(
        "error-400-json-chunked",
        head(b"Content-Type: application/json", CHUNKED, status=b"HTTP/1.1 400 Bad Request")
        + chunked((b'{"message":"invalid request: messages is required"}',)),
        expect=fails(E.BadRequestError, ()),
    ),
    _case(
        "error-500-text",
        head(b"Content-Type: text/plain", b"Content-Length: 21", status=b"HTTP/1.1 500 Oops")
        + b"internal server error",
        expect=fails(E.InternalServerError, ()),
    ),
    _case(
        "error-503-empty",
        head(b"Content-Length: 0", status=b"HTTP/1.1 503 Service Unavailable"),
        expect=fails(E.ServiceUnavailableError, ()),
    ),
    _case(
        "error-502-to-close",
        head(b"Content-Type: text/html", status=b"HTTP/1.1 502 Bad Gateway") + b"<html>bad</html>",
        expect=fails(E.ServerError, ()),
    ),
    _case(
        "error-500-gzip-json",
        head(
            b"Content-Type: application/json",
            b"Content-Encoding: gzip",
            b"Content-Length: %d" % len(_gzip(b'{"message":"boom"}')),
            status=b"HTTP/1.1 500 Internal Server Error",
        )
        + _gzip(b'{"message":"boom"}'),
        expect=fails(E.InternalServerError, ()),
    ),
    _case(
        "error-500-corrupt-gzip",
        head(
            b"Content-Type: application/json",
            b"Content-Encoding: gzip",
            CHUNKED,
            status=b"HTTP/1.1 500 Internal Server Error",
        )
        + chunked((b"\x1f\x8b\x08\x00garbage-not-deflate",)),
        expect=fails(E.StreamkitError, ()),
    ),
    _case(
        "error-500-body-cut-short",
        head(b"Content-Type: application/json", b"Content-Length: 100", status=b"HTTP/1.1 500 Oops")
        + b'{"message":',
        expect=fails(E.StreamkitError, ()),
    ),
    _case(
        "error-401-reset-in-body",
        head(b"Content-Type: application/json", b"Content-Length: 100", status=b"HTTP/1.1 401 No")
        + b'{"message":',
        then="reset",
        expect=fails(E.StreamkitError, ()),
    ),
    # --------------------------------------------------------------- content types
    _case(
        "content-type-json",
        head(b"Content-Type: application/json", b"Content-Length: 11") + b'{"id":"x1"}',
        expect=fails(E.NotEventStreamError, ()),
    ),
    _case(
        "content-type-missing",
        head(CHUNKED) + _CHUNKED_BODY,
        expect=fails(E.NotEventStreamError, ()),
    ),
    _case(
        "content-type-charset",
        head(b"Content-Type: text/event-stream; charset=utf-8", CHUNKED) + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    _case(
        "content-type-uppercase",
        head(b"Content-Type: TEXT/EVENT-STREAM", CHUNKED) + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    # --------------------------------------------------------------- content codings
    _case(
        "gzip-chunked",
        _stream(b"Content-Encoding: gzip") + chunked(_split(_gzip(SSE), 100)),
        expect=COMPLETE,
    ),
    _case(
        "gzip-content-length",
        _length(_gzip(SSE), None, b"Content-Encoding: gzip"),
        expect=COMPLETE,
    ),
    _case(
        "gzip-uppercase-coding",
        _stream(b"Content-Encoding: GZIP") + chunked((_gzip(SSE),)),
        expect=COMPLETE,
    ),
    _case(
        "gzip-twice",
        _stream(b"Content-Encoding: gzip, gzip") + chunked((_gzip(_gzip(SSE)),)),
        expect=COMPLETE,
        only_httpx=True,
        why="RFC 9110 §8.4: codings listed in the order applied; native may refuse it",
    ),
    _case(
        "deflate-zlib",
        _stream(b"Content-Encoding: deflate") + chunked((_zlib(SSE),)),
        expect=COMPLETE,
    ),
    _case(
        "deflate-raw",
        _stream(b"Content-Encoding: deflate") + chunked((_raw_deflate(SSE),)),
        expect=COMPLETE,
    ),
    _case(
        "gzip-corrupt",
        _stream(b"Content-Encoding: gzip") + chunked((_corrupt(_gzip(SSE), 40),)),
        expect=fails(E.StreamkitError),
    ),
    _case(
        "gzip-not-gzip",
        _stream(b"Content-Encoding: gzip") + _CHUNKED_BODY,
        expect=fails(E.StreamkitError, ()),
    ),
    _case(
        "gzip-truncated",
        _stream(b"Content-Encoding: gzip") + chunked((_gzip(SSE)[: len(_gzip(SSE)) // 2],)),
        expect=_TRUNCATED,
    ),
    _case(
        "deflate-corrupt",
        _stream(b"Content-Encoding: deflate") + chunked((_corrupt(_zlib(SSE), 30),)),
        expect=fails(E.StreamkitError),
    ),
    _case(
        "gzip-trailer-corrupt-after-done",
        _stream(b"Content-Encoding: gzip")
        + chunked((_gzip(SSE)[:-8], _corrupt(_gzip(SSE)[-8:], 0))),
        expect=COMPLETE,
        why="the gzip CRC, in a chunk after the one holding [DONE], is wrong",
    ),
    _case(
        "content-encoding-unknown",
        _stream(b"Content-Encoding: x-snappy") + chunked((b"\xff\x06\x00\x00sNaPpY" + _gzip(SSE),)),
        expect=fails(E.StreamkitError),
    ),
    _case(
        "content-encoding-identity",
        _stream(b"Content-Encoding: identity") + _CHUNKED_BODY,
        expect=COMPLETE,
    ),
    HttpCase(
        "gzip-bomb",
        lambda: Reply((_stream(b"Content-Encoding: gzip") + chunked(_split(gzip_bomb(), 16384)),)),
        fails(E.ProtocolError, EVENT_TYPES[:2]),
        "256 MiB of one line behind 250 KB of gzip: a typed error, with bounded memory",
        memory=True,
    ),
    # --------------------------------------------------------------- after [DONE]
    _case(
        "after-done-garbage",
        _STREAM + chunked((SSE + b"\x00\xff garbage \r\n\r\n",)),
        expect=COMPLETE,
    ),
    _case(
        "after-done-broken-chunk",
        _STREAM + chunked(last=b"") + b"zz\r\nnot a chunk",
        expect=COMPLETE,
    ),
    _case(
        "after-done-bad-chunk-size",
        _STREAM + chunked(last=b"") + b"-5\r\nxxxxx\r\n0\r\n\r\n",
        expect=COMPLETE,
    ),
    _case("after-done-reset", _STREAM + chunked(last=b""), then="reset", expect=COMPLETE),
    _case(
        "after-done-extra-events",
        _STREAM + chunked((*SSE_EVENTS, *SSE_EVENTS[2:])),
        expect=COMPLETE,
    ),
    _case(
        "after-done-hold",
        _STREAM + chunked(last=b""),
        then="hold",
        expect=COMPLETE,
        why="the server keeps the body open after [DONE]: the stream must still end",
    ),
    _case(
        "after-done-100-kb-then-hold",
        _STREAM + chunked((*SSE_EVENTS, *(b"x" * 4096,) * 25), last=b""),
        then="hold",
        expect=COMPLETE,
    ),
    _case(
        "complete-then-hold",
        _STREAM + _CHUNKED_BODY,
        then="hold",
        expect=COMPLETE,
        why="a well-framed body on a connection the server keeps open",
    ),
    _case(
        "content-length-then-hold",
        _length(SSE),
        then="hold",
        expect=COMPLETE,
    ),
    _case(
        "message-end-then-close",
        _length(_BEFORE_END + SSE_EVENTS[-2]),
        expect=COMPLETE,
        why="cohere-v2-stream.md §1: EOF right after message-end is a normal end",
    ),
    _case(
        "message-end-then-last-chunk",
        _STREAM + chunked(SSE_EVENTS[:-1]),
        expect=COMPLETE,
    ),
    _case(
        "done-before-message-end",
        _STREAM + chunked((*SSE_EVENTS[:-2], SSE_EVENTS[-1])),
        expect=fails(E.StreamTruncatedError, EVENT_TYPES[:-1]),
    ),
    # --------------------------------------------------------------- truncation
    _case(
        "truncated-mid-event",
        _STREAM
        + chunked(SSE_EVENTS[:3], last=b"")
        + b"%x\r\n" % len(SSE_EVENTS[3])
        + SSE_EVENTS[3][:20],
        expect=fails(E.StreamInterruptedError, EVENT_TYPES[:3]),
    ),
    _case(
        "truncated-mid-chunk-size",
        _STREAM + chunked(SSE_EVENTS[:3], last=b"") + b"4",
        expect=fails(E.StreamInterruptedError, EVENT_TYPES[:3]),
    ),
    _case(
        "truncated-mid-chunk-crlf",
        _STREAM + chunked(SSE_EVENTS[:3], last=b"")[:-1],
        expect=fails(E.StreamInterruptedError),
    ),
    _case(
        "truncated-clean-before-message-end",
        _STREAM + chunked(SSE_EVENTS[:-2]),
        expect=fails(E.StreamTruncatedError, EVENT_TYPES[:-1]),
    ),
    _case(
        "reset-mid-stream",
        _STREAM + chunked(SSE_EVENTS[:3], last=b""),
        then="reset",
        expect=fails(E.StreamInterruptedError, EVENT_TYPES[:3]),
    ),
    _case(
        "truncated-in-head",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/ev",
        expect=_NO_ANSWER,
    ),
    _case("no-answer-close", expect=_NO_ANSWER),
    _case("no-answer-reset", then="reset", expect=_NO_ANSWER),
]
"""Every case; ids are unique."""

assert len({case.id for case in CASES}) == len(CASES)
