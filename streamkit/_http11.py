"""HTTP/1.1 response readers for the native transport: h11's, or llhttp's through httptools.

A reader is handed the bytes of one connection and hands back what they mean, as a few
plain values: a :class:`Head` (the final response's status line and headers), body bytes
(``bytes``), and :data:`END` (the message ended). Interim ``1xx`` answers are skipped; a
response that cannot be trusted raises ``httpx.RemoteProtocolError``, after the events the
bytes before it gave. ``receive(b"")`` says the server closed its side. Neither reader
parses anything itself: h11 or llhttp does, and streamkit only drives them.

:class:`H11Reader` is the default, h11 as in httpx. :class:`HttptoolsReader` is llhttp
(the parser of Node.js, in C, bound by MagicStack's ``httptools``, which uvicorn uses): far
cheaper per read. Where the two libraries disagree on a crafted response,
:class:`HttptoolsReader` is made to refuse what h11 refuses, by llhttp's own strict mode
(no lenient flag is ever set) and by checks on the values llhttp parsed; each is listed on
that class. The request is serialised by h11 for both: it validates every header.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Protocol

import h11
import httpx

from streamkit.errors import ParserNotInstalledError

if TYPE_CHECKING:
    import httptools

__all__ = [
    "END",
    "MAX_HEAD",
    "Event",
    "H11Reader",
    "Head",
    "HttptoolsReader",
    "ParserName",
    "ResponseReader",
    "load_httptools",
    "reader_factory",
]

MAX_HEAD = 64 * 1024
"""The largest response head (or chunk-size line, or trailer block) a reader will hold."""

ParserName = Literal["h11", "httptools"]
"""The HTTP/1.1 response parsers the native transport can use."""


class Head(NamedTuple):
    """A final (non-``1xx``) response's status line and headers, as the parser read them."""

    status_code: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes


class _End:
    """The type of :data:`END`."""

    def __repr__(self) -> str:
        return "END"


END: Final = _End()
"""The response's body ended where its framing says it does."""

Event = Head | bytes | _End
"""What a reader hands back: a response head, body bytes, or the end of the body."""


class ResponseReader(Protocol):
    """One connection's HTTP/1.1 reader: request bytes out, response events in."""

    def request(self, request: httpx.Request) -> bytes:
        """The request's bytes (``h11.LocalProtocolError`` if it cannot be sent)."""
        ...

    def receive(self, data: bytes) -> Iterable[Event]:
        """The events ``data`` completes; ``b""`` for the server's end of input."""
        ...

    def next_cycle(self) -> bool:
        """Ready for the connection's next exchange; False if it cannot be reused."""
        ...


def _h11_request(connection: h11.Connection, request: httpx.Request) -> bytes:
    return b"".join(
        connection.send(event) or b""
        for event in (
            h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            ),
            h11.Data(data=request.content),
            h11.EndOfMessage(),
        )
    )


_DISCONNECTED = "Server disconnected without sending a response."


class H11Reader:
    """The response as h11 reads it (the same parser, and limits, as httpx)."""

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def request(self, request: httpx.Request) -> bytes:  # noqa: D102 (the protocol's)
        return _h11_request(self._h11, request)

    def receive(self, data: bytes) -> Iterator[Event]:  # noqa: D102
        self._h11.receive_data(data)
        return self._events()

    def _events(self) -> Iterator[Event]:
        connection = self._h11
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                raise httpx.RemoteProtocolError(str(error)) from error
            kind = type(event)
            if kind is h11.Data:
                assert isinstance(event, h11.Data)
                yield bytes(event.data)
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            elif kind is h11.Response:
                assert isinstance(event, h11.Response)
                yield Head(
                    event.status_code, bytes(event.reason), list(event.headers), event.http_version
                )
            elif kind is h11.EndOfMessage:
                yield END
                return
            elif kind is h11.ConnectionClosed:
                raise httpx.RemoteProtocolError(_DISCONNECTED)
            # Anything else is an interim 1xx answer: the real one follows.

    def next_cycle(self) -> bool:  # noqa: D102
        connection = self._h11
        if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
            return False
        try:
            connection.start_next_cycle()
        except h11.LocalProtocolError:
            return False
        return True


_httptools: Any = None


def load_httptools() -> Any:
    """The ``httptools`` module, or :class:`~streamkit.errors.ParserNotInstalledError`.

    Imported on first use only, so that ``import streamkit`` never imports it.
    """
    global _httptools
    if _httptools is None:
        try:
            _httptools = importlib.import_module("httptools")
        except ImportError as error:
            raise ParserNotInstalledError(
                "parser='httptools' needs the httptools package:"
                " pip install 'cohere-streamkit[fast]'"
            ) from error
    return _httptools


_MAX_LENGTH_DIGITS = 20
"""h11's CONTENT_LENGTH_MAX_DIGITS: llhttp takes any number of leading zeros."""
_OWS = b" \t"
_BLANK = b"\r\n"
_REASON = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
"""RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text )."""


class HttptoolsReader:
    """The response as llhttp reads it, in its strict mode (no lenient flag is ever set).

    llhttp alone is stricter than h11 on: bare LF line ends (in the head and in chunked
    framing), obs-fold, control characters in header values, whitespace before a header's
    colon, a Content-Length list (``5, 5``), Content-Length with Transfer-Encoding, and HTTP
    versions other than 0.9, 1.0, 1.1 and 2.0. Each is refused with a typed error where h11
    would go on. Where llhttp alone is more lenient than h11, this reader refuses on what
    llhttp parsed (one check looks at a single byte first, and parses nothing):

    * A status code below 100 (``HTTP/1.1 099``): llhttp reads it as 99.
    * A control character in the reason phrase (NUL, for one, which h11 refuses): the
      parsed phrase must match RFC 9112 §4's ``*( HTAB / SP / VCHAR / obs-text )``.
    * An empty line before the status line: llhttp skips CR and LF before a message
      (RFC 9112 §2.2's robustness rule, meant for servers reading requests), h11 refuses
      them. This reader refuses a response whose first byte is CR or LF: a comparison of
      one byte with two, before llhttp sees it, not a parse. Between an interim ``1xx``
      answer and the next one llhttp still skips them (nothing shows where they were):
      the one difference left on the head, harmless since the next head is still parsed
      whole and strictly.
    * A Transfer-Encoding other than exactly one ``chunked`` (``gzip, chunked``,
      ``identity``, two headers): llhttp decodes the last ``chunked`` or reads to the close.
    * A Content-Length of more than 20 digits (h11's limit): llhttp allows leading zeros.
    * A head, chunk-size line or trailer block over :data:`MAX_HEAD` bytes: llhttp has no
      limit, and ``httptools`` gathers a header in memory until it ends. The sizes of the
      parsed status and headers are added up; bytes fed with no progress (no head
      completed, no body byte) are counted too, for a line that never ends.
    * The server's close inside a body framed by Content-Length or chunked coding:
      ``httptools`` does not expose ``llhttp_finish``, so a body delimited by the close
      (RFC 9112 §6.3 rule 8: neither header present) is ended here, by the header names.
    * A 101 (Switching Protocols) no one asked for: ``HttpParserUpgrade`` is an error.
    * Bytes after the message's end make the connection unusable (not another response).

    Leading and trailing whitespace is stripped from header values (RFC 9110 §5.5), as h11
    does; llhttp keeps the trailing part. One difference stays: a chunk size with more than
    20 digits of leading zeros is accepted (h11 refuses it); its value is still exact and
    checked for overflow by llhttp.
    """

    def __init__(self) -> None:
        module = load_httptools()
        self._new_parser: Callable[[HttptoolsReader], httptools.HttpResponseParser] = (
            module.HttpResponseParser
        )
        self._errors: type[Exception] = module.HttpParserError
        self._upgrade: type[Exception] = module.HttpParserUpgrade
        self._reset()

    def _reset(self) -> None:
        """Ready for a new response: a fresh parser and no state."""
        self._parser = self._new_parser(self)
        self._events: list[Event] = []
        self._fed = False  # the first byte was seen
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._head_size = 0  # bytes of the status and headers parsed so far
        self._stale = 0  # bytes fed since the last progress
        self._progress = False
        self._began = False  # some response has started
        self._answered = False  # the final response's head came
        self._framed = False  # it has Content-Length or Transfer-Encoding
        self._done = False
        self._keep_alive = False
        self._extra = False  # bytes came after the message's end
        self._eof = False
        self._failure: Exception | None = None

    def request(self, request: httpx.Request) -> bytes:  # noqa: D102 (the protocol's)
        return _h11_request(h11.Connection(h11.CLIENT), request)

    def receive(self, data: bytes) -> Iterable[Event]:  # noqa: D102
        if not data:
            return self._end_of_input()
        if self._done:
            self._extra = True
            return ()
        if not self._fed:
            self._fed = True
            if data[0] in _BLANK:  # see the class doc: llhttp would skip it, h11 refuses
                return self._then([], "an empty line before the status line")
        events: list[Event] = []
        self._events = events
        self._progress = False
        try:
            self._parser.feed_data(data)
        except self._upgrade:
            return self._then(events, "the server switched protocols (101), unasked")
        except self._errors as error:
            if self._failure is not None:
                return self._then(events, str(self._failure))
            if not self._extra:
                return self._then(events, str(error) or type(error).__name__)
        if self._progress:
            self._stale = 0
        elif not self._done:
            self._stale += len(data)
            if self._stale > MAX_HEAD:
                return self._then(events, f"over {MAX_HEAD} bytes of framing without an end")
        return events

    def next_cycle(self) -> bool:  # noqa: D102
        if not self._done or not self._keep_alive or self._extra or self._eof:
            return False
        self._reset()
        return True

    @staticmethod
    def _then(events: list[Event], reason: str) -> Iterator[Event]:
        yield from events
        raise httpx.RemoteProtocolError(reason)

    def _end_of_input(self) -> Iterable[Event]:
        self._eof = True
        if self._done:
            return ()
        if not self._began:
            return self._then([], _DISCONNECTED)
        if not self._answered:
            return self._then([], "peer closed connection without sending a complete response")
        if self._framed:
            return self._then([], "peer closed connection without sending complete message body")
        self._done = True  # the close delimits this body
        return (END,)

    def _refuse(self, reason: str) -> None:
        """Stop llhttp from a callback (any exception does); ``receive`` raises the reason."""
        self._failure = httpx.RemoteProtocolError(reason)
        raise self._failure

    # llhttp's callbacks (through httptools), in the order it calls them.

    def on_message_begin(self) -> None:  # noqa: D102
        if self._done:
            self._extra = True  # llhttp stops; receive() drops its error, keeps the events
            raise httpx.RemoteProtocolError("bytes after the end of the response")
        self._began = True
        self._headers = []
        self._reason = b""
        self._head_size = 0

    def on_status(self, reason: bytes) -> None:  # noqa: D102
        self._reason += reason
        self._grow(len(reason))
        if _REASON.fullmatch(reason) is None:
            self._refuse("a control character in the reason phrase")

    def on_header(self, name: bytes, value: bytes) -> None:  # noqa: D102
        self._grow(len(name) + len(value))
        if not self._answered:  # trailers are read and dropped, as h11's are here
            self._headers.append((name, value.strip(_OWS)))

    def _grow(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            self._refuse(f"a response head over {MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:  # noqa: D102
        parser = self._parser
        status = parser.get_status_code()
        self._progress = True
        self._head_size = 0  # trailers have a budget of their own
        if status < 100:
            self._refuse(f"status code {status} is not in the range 100-999")
        if status < 200:
            return  # interim: llhttp ends it with no body, and the real answer follows
        framed = False
        codings = 0
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                framed = True
                codings += 1
                if codings > 1 or value.lower() != b"chunked":
                    self._refuse(f"Transfer-Encoding {value!r} is not supported")
            elif lower == b"content-length":
                framed = True
                if len(value) > _MAX_LENGTH_DIGITS:
                    self._refuse("bad Content-Length")
        self._answered = True
        self._framed = framed
        version = parser.get_http_version().encode("ascii")
        self._events.append(Head(status, self._reason, self._headers, version))

    def on_body(self, body: bytes) -> None:  # noqa: D102
        self._progress = True
        self._events.append(body)

    def on_message_complete(self) -> None:  # noqa: D102
        self._progress = True
        if not self._answered:
            return  # the end of an interim answer
        self._done = True
        self._keep_alive = self._parser.should_keep_alive()
        self._events.append(END)


def reader_factory(parser: ParserName) -> type[H11Reader] | type[HttptoolsReader]:
    """The reader class for ``parser``; ``httptools`` is imported here, if at all."""
    if parser == "h11":
        return H11Reader
    if parser == "httptools":
        load_httptools()
        return HttptoolsReader
    raise ValueError(f"parser must be 'h11' or 'httptools', not {parser!r}")
