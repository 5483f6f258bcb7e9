"""Every decision about one chat request, with no I/O: the sans-IO stream engine.

A transport only moves bytes. It tells the engine what happened, and the engine answers:

* :meth:`StreamEngine.attempt` before each send: it counts the sends, so a request is
  never sent more than ``1 + max_retries`` times, whatever the transport or the failure.
* :meth:`Attempt.head` with the status and headers, :meth:`Attempt.receive` with each
  piece of the body as it came off the wire (still content-encoded), :meth:`Attempt.end`
  when the body's framing ended. Out come typed events, or the typed error: a non-2xx
  status, a 2xx that is not ``text/event-stream``, a malformed event, a truncated stream.
* :meth:`Attempt.broken` when the transport failed (a reset, a framing error, a read
  timeout) and :meth:`Attempt.timed_out` when our own idle timeout or deadline fired:
  the typed error with the partial message, or None when ``[DONE]`` had already come
  (what follows ``[DONE]`` never turns a complete stream into an error).
* :meth:`StreamEngine.retry_delay` after a failed attempt: how long to wait before
  sending again, or None to give up; :meth:`StreamEngine.final` then masks the request's
  credentials in the error and everything it chains to.

Bodies are decompressed here (gzip and deflate, the codings the client asks for) in
pieces of at most 64 KiB, so a small compressed body that inflates to gigabytes meets the
decoder's event and line limits before it can fill memory; error bodies are kept up to
64 KiB and non-streamed answers up to ``max_event_size``.

The engine never touches a socket, a clock it was not given, a thread or a task: the sync
httpx driver, the async httpx driver and the native asyncio transport are thin loops
around it, and its tests need no server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from streamkit._decode import ChatEventDecoder
from streamkit._events import ChatEvent
from streamkit._logmask import hold_secrets
from streamkit._message import ChatResponse
from streamkit._retry import RetryPolicy
from streamkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ContentDecodingError,
    NotEventStreamError,
    ProtocolError,
    StreamInterruptedError,
    StreamkitError,
    StreamTimeoutError,
    mask_secrets,
    status_error_from_body,
)

__all__ = [
    "ACCEPT_ENCODING",
    "DRAIN_LIMIT",
    "DRAIN_WAIT",
    "ERROR_BODY_LIMIT",
    "Attempt",
    "StreamEngine",
    "StreamPlan",
    "request_secrets",
]

logger = logging.getLogger("streamkit")

ACCEPT_ENCODING = "gzip, deflate"
"""The content codings the client asks for: exactly those decoded here."""
ERROR_BODY_LIMIT = 64 * 1024
"""How much of an error body (decoded) is kept; the rest is not read."""
DRAIN_LIMIT = 64 * 1024
"""How much a transport reads past ``[DONE]`` to reuse the connection before giving up."""
DRAIN_WAIT = 0.25
"""How long a transport waits past ``[DONE]`` for the body's end before giving it up.

A server normally ends the body right after ``[DONE]``, and reading to its end lets the
connection be reused; one that holds the body open must not hold the stream's end back.
"""

_PIECE = 64 * 1024  # decompressed bytes handed on at a time
_MAX_CODINGS = 4  # more stacked content codings than this is no real server
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-trace-id", "x-debug-trace-id")
_CREDENTIAL_HEADER = re.compile(r"(?i)authorization|api[-_]?key|token|secret|cookie")

_E = TypeVar("_E", bound=BaseException)

# What an attempt's body is, once its head arrived.
_WAITING, _STREAM, _WHOLE, _ERROR = range(4)


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """The settings one request runs with.

    Args:
        retry: When to send again, and how long to wait first.
        max_event_size: The largest event accepted (characters), also the largest
            non-streamed answer (bytes, decoded).
        max_line_size: The longest line accepted, or None.
        idle_timeout: Seconds the server may stay silent between events, or None.
        deadline: Seconds the whole request may take, retries included, or None.
    """

    retry: RetryPolicy
    max_event_size: int
    max_line_size: int | None = None
    idle_timeout: float | None = None
    deadline: float | None = None


def request_secrets(request: httpx.Request) -> list[str]:
    """The credentials a request carries, to mask wherever they could be echoed back.

    The value of every header whose name says it holds a credential (``Authorization``,
    ``X-Api-Key``, ``Cookie``, ...) and the token after its scheme (``Bearer <key>``).
    """
    found: list[str] = []
    for name, value in request.headers.multi_items():
        if _CREDENTIAL_HEADER.search(name):
            found.append(value)
            _, _, token = value.partition(" ")
            found.append(token.strip())
    return [secret for secret in found if len(secret) >= 8]


def _redacted(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` to keep on errors: credential headers read ``***``."""
    headers = [
        (name, "***" if _CREDENTIAL_HEADER.search(name) else value)
        for name, value in request.headers.multi_items()
    ]
    return httpx.Request(request.method, request.url, headers=headers, content=request.content)


class StreamEngine:
    """One request's decisions across all its attempts.

    Args:
        request: The request to send (built once, sent as is on every attempt).
        plan: Limits, timeouts and the retry policy.
        whole: True for a non-streamed answer (``chat()``), False for a stream.
        clock: Monotonic seconds; the deadline is measured on it.
    """

    def __init__(
        self,
        request: httpx.Request,
        plan: StreamPlan,
        *,
        whole: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self.plan = plan
        self.whole = whole
        self.sends = 0
        """How many times the request was (or is being) sent."""
        self._clock = clock
        self._started = clock()
        self._secrets = request_secrets(request)
        self._public = _redacted(request)
        # Until the engine is gone, no httpx or httpcore log record shows its credentials.
        weakref.finalize(self, hold_secrets(self._secrets))
        self._current: Attempt | None = None

    @property
    def public_request(self) -> httpx.Request:
        """The request as errors show it: its credentials masked."""
        return self._public

    def attempt(self) -> Attempt:
        """Start the next send; every call counts against ``1 + max_retries``."""
        assert self.sends <= self.plan.retry.max_retries, "the retry policy allows no more sends"
        self.sends += 1
        self._current = Attempt(self)
        return self._current

    @property
    def idle_timeout(self) -> float | None:
        """The idle timeout between events; None for a non-streamed answer (it has none)."""
        return None if self.whole else self.plan.idle_timeout

    def answer(self) -> ChatResponse:
        """The non-streamed answer of the last attempt, once its body ended."""
        assert self._current is not None
        return self._current.answer()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None without one; may be negative)."""
        if self.plan.deadline is None:
            return None
        return self.plan.deadline - (self._clock() - self._started)

    def retry_delay(self, error: BaseException) -> float | None:
        """Seconds to wait before sending again after ``error``, or None to give up.

        Retried only while no event was delivered, and only connection failures,
        interrupted streams and the statuses the policy names; never our own idle
        timeout or deadline, and never a wait that would pass the deadline.
        """
        current = self._current
        if current is not None and current.decoder.events:
            return None
        retries = self.sends - 1
        policy = self.plan.retry
        delay: float | None
        if isinstance(error, APIStatusError):
            delay = policy.delay_for_status(retries, error.status_code, error.headers)
        elif isinstance(error, StreamTimeoutError) and error.reason is not None:
            return None
        elif isinstance(error, (APIConnectionError, StreamInterruptedError)):
            delay = policy.delay_for_transport_error(retries)
        else:
            return None
        if delay is None:
            return None
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            return None
        what = f"HTTP {error.status_code}" if isinstance(error, APIStatusError) else None
        logger.info(
            "retrying after %s in %.2f s (retry %d of %d)",
            what or type(error).__name__,
            delay,
            retries + 1,
            policy.max_retries,
        )
        return delay

    def wait_before_retry(self, error: StreamkitError) -> float:
        """Seconds to wait before the next send after ``error``.

        Raises:
            StreamkitError: ``error`` itself, masked (:meth:`final`), when it is not retried.
        """
        delay = self.retry_delay(error)
        if delay is None:
            raise self.final(error)
        return delay

    def final(self, error: _E) -> _E:
        """``error`` with the request's credentials masked in it and all it chains to."""
        mask_secrets(error, self._secrets, request=self._public)
        return error


class Attempt:
    """One send of the request and the one response it got."""

    __slots__ = (
        "_body",
        "_body_size",
        "_engine",
        "_headers",
        "_limit",
        "_mode",
        "_stages",
        "_status",
        "decoder",
    )

    def __init__(self, engine: StreamEngine) -> None:
        self._engine = engine
        plan = engine.plan
        self.decoder = ChatEventDecoder(
            max_event_size=plan.max_event_size, max_line_size=plan.max_line_size
        )
        self._mode = _WAITING
        self._status = 0
        self._headers = httpx.Headers()
        self._stages: list[_Inflater] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._limit = 0

    @property
    def complete(self) -> bool:
        """True once the stream reached ``[DONE]``: the rest of the body is to be ignored."""
        return self._mode == _STREAM and self.decoder.done

    @property
    def answered(self) -> bool:
        """True once the response head arrived."""
        return self._mode != _WAITING

    def head(self, status: int, headers: httpx.Headers, *, decoded: bool = False) -> None:
        """The response's status and headers (after any interim ``1xx``).

        ``decoded``: the body will come already decoded (an ``httpx.Response`` read before
        we got it, as ``httpx.MockTransport`` hands them out), so no content coding is undone.

        Raises:
            APIStatusError: Never here: a non-2xx answer's error is raised once its body
                was read (by :meth:`receive` or :meth:`end`), so it can carry the message.
        """
        self._status, self._headers = status, headers
        codings = [c.strip().lower() for c in headers.get_list("content-encoding", True)]
        # Unknown codings pass through, as httpx does; the codings apply in listed order,
        # so they are undone in reverse (RFC 9110 §8.4).
        if not decoded:
            self._stages = [_Inflater(c) for c in reversed(codings) if c in ("gzip", "deflate")]
        success = 200 <= status < 300
        if not success or (not self._engine.whole and not _is_event_stream(headers)):
            self._mode, self._limit = _ERROR, ERROR_BODY_LIMIT
        elif self._engine.whole:
            self._mode, self._limit = _WHOLE, self._engine.plan.max_event_size
        else:
            self._mode = _STREAM
        if len(self._stages) > _MAX_CODINGS:
            raise self._decoding_failed(f"{len(self._stages)} stacked content codings")

    def receive(self, data: bytes) -> Iterator[ChatEvent]:
        """Body bytes as received (still content-encoded): the events they complete.

        Raises the typed error in stream order, after every event before it.
        """
        if self._mode == _STREAM:
            decoder = self.decoder
            if decoder.done:
                return
            if not self._stages:
                yield from decoder.feed(data)
                return
            for piece in self._inflate(data):
                yield from decoder.feed(piece)
                if decoder.done:
                    return
        else:
            for piece in self._inflate(data):
                self._keep(piece)

    def end(self, expired: str | None = None) -> Iterator[ChatEvent]:
        """The body ended as its framing says: the events still held, then the verdict.

        ``expired``: our own ``"idle"`` timeout or ``"deadline"`` had cut the connection
        (a shut-down socket can read as a clean end of body).

        Raises:
            StreamTruncatedError: The stream ended before ``message-end``.
            APIStatusError: The answer was a non-2xx status.
            NotEventStreamError: A 2xx stream request that got no event stream.
        """
        if expired is not None and not self.complete:
            raise self.timed_out(expired)
        for piece in self._flush():
            if self._mode == _STREAM:
                if not self.decoder.done:
                    yield from self.decoder.feed(piece)
            else:
                self._keep(piece)
        if self._mode == _STREAM:
            if not self.decoder.done:
                self.decoder.finish()
        elif self._mode != _WHOLE:
            raise self._rejected()

    def answer(self) -> ChatResponse:
        """The non-streamed answer, once :meth:`end` ran.

        Raises:
            ProtocolError: The body is not a chat response.
        """
        raw = b"".join(self._body)
        try:
            return ChatResponse.model_validate_json(raw)
        except ValidationError as error:
            problem = error.errors(include_url=False, include_input=False)
            first = problem[0]["msg"] if problem else "invalid"
            raise ProtocolError(f"the answer is not a chat response: {first}") from None

    def broken(self, error: BaseException, *, timeout: bool = False) -> StreamkitError | None:
        """The transport failed (``timeout``: its read timeout fired): the typed error.

        None when the stream had already reached ``[DONE]``: it is complete.
        The returned error's ``__cause__`` is ``error``.
        """
        if self.complete:
            return None
        engine = self._engine
        what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        failure: StreamkitError
        if self._mode == _WAITING:
            if timeout:
                failure = APITimeoutError(
                    f"the request timed out before an answer ({type(error).__name__})",
                    request=engine.public_request,
                )
            else:
                failure = APIConnectionError(
                    f"could not reach the server ({what})", request=engine.public_request
                )
        elif self._mode == _ERROR:
            failure = self._rejected()
        elif self._mode == _WHOLE:
            failure = APIConnectionError(
                f"the connection broke while reading the answer ({what})",
                request=engine.public_request,
            )
        else:
            count = self.decoder.events
            partial = self.decoder.accumulator.snapshot()
            if timeout:
                failure = StreamTimeoutError(
                    f"the stream timed out after {count} events ({type(error).__name__})",
                    partial_message=partial,
                    request=engine.public_request,
                )
            else:
                failure = StreamInterruptedError(
                    f"the connection broke after {count} events ({what})",
                    partial_message=partial,
                    request=engine.public_request,
                )
        failure.__cause__ = error
        return failure

    def unanswered(self, error: BaseException) -> StreamkitError:
        """Sending failed, or no answer came: the typed connection or timeout error."""
        failure = self.broken(error, timeout=isinstance(error, httpx.TimeoutException))
        assert failure is not None  # nothing was read: never complete
        return failure

    def failed(self, error: BaseException, expired: str | None = None) -> StreamkitError | None:
        """An httpx call failed: the typed error, or None when the stream was complete.

        ``expired``: our own timeout had cut the connection, which is what failed.
        """
        if expired is not None:
            return None if self.complete else self.timed_out(expired)
        return self.broken(error, timeout=isinstance(error, httpx.TimeoutException))

    def timed_out(self, reason: str) -> StreamTimeoutError:
        """Our own ``"idle"`` timeout or ``"deadline"`` fired: the error (it has no cause)."""
        plan = self._engine.plan
        count = self.decoder.events
        if reason == "idle":
            message = f"no event for {plan.idle_timeout} s (idle_timeout) after {count} events"
        else:
            message = f"the stream passed its {plan.deadline} s deadline after {count} events"
        return StreamTimeoutError(
            message,
            partial_message=self.decoder.accumulator.snapshot(),
            request=self._engine.public_request,
            reason=reason,
        )

    # ------------------------------------------------------------------ bodies

    def _inflate(self, data: bytes, depth: int = 0) -> Iterator[bytes]:
        """Undo the content codings from ``depth`` on, in pieces of at most 64 KiB."""
        if depth == len(self._stages):
            if data:
                yield data
            return
        stage = self._stages[depth]
        while data:
            try:
                out, data = stage.decompress(data, _PIECE)
            except zlib.error as error:
                raise self._decoding_failed(str(error)) from error
            if out:
                yield from self._inflate(out, depth + 1)
            if self.complete:
                return

    def _flush(self) -> Iterator[bytes]:
        for depth, stage in enumerate(self._stages):
            try:
                tail = stage.flush()
            except zlib.error as error:
                raise self._decoding_failed(str(error)) from error
            if tail:
                yield from self._inflate(tail, depth + 1)

    def _keep(self, piece: bytes) -> None:
        """Keep a piece of an error body or a whole answer, up to its limit."""
        room = self._limit - self._body_size
        self._body.append(piece[:room])
        self._body_size += min(len(piece), room)
        if len(piece) > room:
            if self._mode == _ERROR:
                raise self._rejected()  # enough to say what went wrong; the rest is unread
            raise ProtocolError(f"the answer is larger than max_event_size ({self._limit} bytes)")

    def _decoding_failed(self, reason: str) -> StreamkitError:
        if self._mode == _ERROR:
            return self._rejected()
        coding = self._headers.get("content-encoding", "")
        return ContentDecodingError(
            f"the body's Content-Encoding ({coding}) could not be decoded: {reason}",
            partial_message=self.decoder.accumulator.snapshot(),
        )

    def _rejected(self) -> StreamkitError:
        """The error for a non-2xx answer, or a 2xx stream request that got no stream."""
        raw = b"".join(self._body)
        headers = self._headers
        if not 200 <= self._status < 300:
            text = raw.decode("utf-8", "replace")
            body: object
            try:
                body = json.loads(text) if text.strip() else None
            except (ValueError, RecursionError):
                body = text
            request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
            return status_error_from_body(
                self._status, body, headers=dict(headers), request_id=request_id
            )
        content_type = headers.get("content-type", "")
        return NotEventStreamError(
            f"expected a text/event-stream answer, got {content_type or 'no content type'!r}",
            content_type=content_type,
            body=raw.decode("utf-8", "replace"),
        )


def _is_event_stream(headers: httpx.Headers) -> bool:
    media_type: str = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "text/event-stream"


class _Inflater:
    """One content coding undone with bounded output (``zlib``'s ``max_length``).

    ``deflate`` is zlib-wrapped by the RFC, but some servers send raw deflate: as httpx
    does, a first block that is not zlib is read again as raw deflate.
    """

    __slots__ = ("_inner", "_raw_fallback")

    def __init__(self, coding: str) -> None:
        wbits = zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS
        self._inner: Any = zlib.decompressobj(wbits)
        self._raw_fallback = coding == "deflate"

    def decompress(self, data: bytes, limit: int) -> tuple[bytes, bytes]:
        """Up to ``limit`` bytes of output, and the input not consumed yet."""
        try:
            out = self._inner.decompress(data, limit)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._raw_fallback = False
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inner.decompress(data, limit)
        self._raw_fallback = False
        return bytes(out), bytes(self._inner.unconsumed_tail)

    def flush(self) -> bytes:
        """What the decompressor still holds at the end of the body."""
        return bytes(self._inner.flush())
