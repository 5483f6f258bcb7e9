"""The exceptions streamkit raises, one tree with one root.

::

    StreamkitError                       every error below; catch this to catch them all
    ├── MissingAPIKeyError               no api_key argument and no CO_API_KEY variable
    ├── InvalidHeaderError               a header that cannot go on the wire (also ValueError)
    ├── ProxyNotSupportedError           a proxy applies, and the transport cannot use one
    ├── ParserNotInstalledError          httptools asked for, not installed (also ImportError)
    ├── APIStatusError                   the server answered with a non-2xx status before any event
    │   ├── BadRequestError              400
    │   ├── UnauthorizedError            401
    │   ├── ForbiddenError               403
    │   ├── NotFoundError                404
    │   ├── UnprocessableEntityError     422
    │   ├── RateLimitError               429
    │   ├── InvalidTokenError            498
    │   ├── ClientClosedRequestError     499
    │   └── ServerError                  5xx
    │       ├── InternalServerError      500
    │       ├── NotImplementedServerError 501
    │       ├── ServiceUnavailableError  503
    │       └── GatewayTimeoutError      504
    ├── APIConnectionError               no answer came (also an httpx.TransportError)
    │   └── APITimeoutError              ... because a timeout fired (also httpx.TimeoutException)
    ├── StreamError                      the stream started but went wrong; carries .partial_message
    │   ├── ProtocolError                the bytes are not a Cohere SSE stream
    │   │   ├── NotEventStreamError      a 2xx answer that is not text/event-stream
    │   │   ├── ContentDecodingError     the body's gzip or deflate coding is corrupt
    │   │   ├── EventTooLargeError       one event is bigger than max_event_size
    │   │   ├── LineTooLargeError        one line is longer than max_line_size
    │   │   └── MalformedEventError      an event whose JSON is invalid or has the wrong shape
    │   ├── UnexpectedEventError         an event that contradicts the ones before it
    │   ├── StreamTruncatedError         the stream ended cleanly but before message-end
    │   ├── StreamInterruptedError       the connection broke mid-stream (also httpx.TransportError)
    │   │   └── StreamTimeoutError       no data came in time (also httpx.TimeoutException)
    │   └── ServerStreamError            the server reported an error inside a 200 stream
    ├── ToolArgumentsError               a tool call's joined arguments are not valid JSON
    ├── InvalidSchemaError               a response_format type with no usable JSON schema
    ├── StructuredOutputError            a structured reply that is not JSON fitting its type
    ├── ToolDefinitionError              a tool run_tools cannot describe or call (also ValueError)
    ├── ToolError                        a tool call that gave no result; the model reads why
    ├── NoEventLoopError                 an async stream subscribed with no asyncio loop to run on
    ├── ServerNotRunningError            an OfflineServer's address asked for while it is stopped
    ├── OfflineRequestError              a request body the OfflineServer cannot answer (its 400)
    ├── InvalidUIMessageError            AI SDK UIMessages that are not valid (also ValueError)
    ├── BatchInputError                  a batch's request row that cannot be sent (also ValueError)
    └── BatchRunError                    a batch run that could not go on (its output, its workers)

Transport failures stay catchable as httpx errors: ``APIConnectionError`` and
``StreamInterruptedError`` are also ``httpx.TransportError``, and the two timeout classes
are also ``httpx.TimeoutException``; the original httpx exception is their ``__cause__``.

No error message, ``repr`` or attribute ever holds the API key: text echoed by a server
(error bodies, in-stream error reasons) is scrubbed of ``Bearer`` tokens and ``co-`` keys
when stored, and the client masks the exact credentials its request carried (the key, and
any key-like header the caller added) in every error it raises.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from streamkit._events import ChatEvent
    from streamkit._message import ChatResponse
    from streamkit._sse_event import ServerSentEvent

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "BadRequestError",
    "BatchInputError",
    "BatchRunError",
    "ClientClosedRequestError",
    "ContentDecodingError",
    "EventTooLargeError",
    "ForbiddenError",
    "GatewayTimeoutError",
    "InternalServerError",
    "InvalidHeaderError",
    "InvalidSchemaError",
    "InvalidTokenError",
    "InvalidUIMessageError",
    "LineTooLargeError",
    "MalformedEventError",
    "MissingAPIKeyError",
    "NoEventLoopError",
    "NotEventStreamError",
    "NotFoundError",
    "NotImplementedServerError",
    "OfflineRequestError",
    "ParserNotInstalledError",
    "ProtocolError",
    "ProxyNotSupportedError",
    "RateLimitError",
    "ServerError",
    "ServerNotRunningError",
    "ServerStreamError",
    "ServiceUnavailableError",
    "StreamError",
    "StreamInterruptedError",
    "StreamTimeoutError",
    "StreamTruncatedError",
    "StreamkitError",
    "StructuredOutputError",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "UnauthorizedError",
    "UnexpectedEventError",
    "UnprocessableEntityError",
    "status_error_class",
]


class StreamkitError(Exception):
    """The root of every error streamkit raises."""


class MissingAPIKeyError(StreamkitError):
    """No API key was given: pass ``api_key=`` or set the ``CO_API_KEY`` environment variable."""


class InvalidHeaderError(StreamkitError, ValueError):
    """A header name or value that must not be sent: nothing was sent.

    A CR, LF or NUL in a header would let a value start a header or a request of its own
    (request splitting, RFC 9112 §11.1); control characters and non-ASCII text are refused
    too. The message names the header, never its value (it may be a credential).
    """


class ProxyNotSupportedError(StreamkitError):
    """A proxy applies to the URL, and the transport cannot go through one.

    ``HTTP(S)_PROXY`` or ``ALL_PROXY`` names a proxy for the URL and ``NO_PROXY`` does not
    exempt it; the native transport refuses rather than connect around the proxy.

    Use the default httpx transport, which honours proxies, or exempt the host with
    ``NO_PROXY``.
    """


class ParserNotInstalledError(StreamkitError, ImportError):
    """The HTTP parser asked for is not installed: ``NativeTransport(parser="httptools")``.

    Raised when the transport is made, before any request. Install the ``fast`` extra
    (``pip install 'cohere-streamkit[fast]'``), or keep the default ``parser="h11"``.
    """


# --------------------------------------------------------------------------- HTTP status

_BODY_LIMIT = 2000


def _scrub(text: str) -> str:
    """Mask anything that looks like a bearer token or a Cohere key in server-echoed text."""
    return _SECRET.sub("***", text)


# A bearer token is RFC 6750's b64token; anything after it (a bracket, a quote) is kept.
_SECRET = re.compile(r"(?i)(?<=bearer )[A-Za-z0-9\-._~+/]+=*|\bco-[A-Za-z0-9_-]{8,}")


class APIStatusError(StreamkitError):
    """The server answered with a non-2xx status before streaming any event.

    Attributes:
        status_code: The HTTP status.
        body: The parsed JSON body, or the raw text when it is not JSON (None when empty).
        headers: The response headers (no request headers: those hold the key).
        request_id: The server's request id header, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(_scrub(message))
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={str(self)!r})"


class BadRequestError(APIStatusError):
    """400: the request body is invalid; fix the arguments before retrying."""


class UnauthorizedError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class ForbiddenError(APIStatusError):
    """403: the API key may not use this model or feature."""


class NotFoundError(APIStatusError):
    """404: the model or the endpoint does not exist (check ``model`` and ``base_url``)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request is well-formed JSON but its contents were rejected."""


class RateLimitError(APIStatusError):
    """429: too many requests; wait (see the ``Retry-After`` header) and try again."""


class InvalidTokenError(APIStatusError):
    """498: the API key is not valid (Cohere's status for a malformed token)."""


class ClientClosedRequestError(APIStatusError):
    """499: the request was cancelled before the server finished it."""


class ServerError(APIStatusError):
    """5xx: the server failed; the request may succeed if tried again later."""


class InternalServerError(ServerError):
    """500: the server hit an internal error."""


class NotImplementedServerError(ServerError):
    """501: the server does not support this request."""


class ServiceUnavailableError(ServerError):
    """503: the service is overloaded or down for maintenance."""


class GatewayTimeoutError(ServerError):
    """504: a gateway in front of the model timed out."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    498: InvalidTokenError,
    499: ClientClosedRequestError,
    500: InternalServerError,
    501: NotImplementedServerError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """Return the error class for an HTTP status: a named class, ServerError, or APIStatusError."""
    if status_code in _STATUS_CLASSES:
        return _STATUS_CLASSES[status_code]
    if 500 <= status_code < 600:
        return ServerError
    return APIStatusError


# --------------------------------------------------------------------------- transport


class APIConnectionError(StreamkitError, httpx.TransportError):
    """The request got no answer: the connection was refused, reset or never established.

    It is also an ``httpx.TransportError``; the httpx exception is its ``__cause__``.
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        httpx.TransportError.__init__(self, message, request=request)


class APITimeoutError(APIConnectionError, httpx.TimeoutException):
    """A timeout fired before the server's first byte arrived."""


# --------------------------------------------------------------------------- stream


class StreamError(StreamkitError):
    """The stream started, then went wrong.

    Attributes:
        partial_message: Everything accumulated before the failure, as a ``ChatResponse``
            (``usage`` is None when ``message-end`` never came). None only when the error
            was raised outside a stream, e.g. by decoding a lone event.
    """

    def __init__(self, message: str, *, partial_message: ChatResponse | None = None) -> None:
        super().__init__(message)
        self.partial_message = partial_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ProtocolError(StreamError):
    """The bytes received are not a valid Cohere V2 server-sent event stream."""


class NotEventStreamError(ProtocolError):
    """A 2xx answer whose Content-Type is not ``text/event-stream``.

    Attributes:
        content_type: The Content-Type header received ("" when absent).
        body: The start of the body, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        content_type: str,
        body: str,
        partial_message: ChatResponse | None = None,
    ) -> None:
        super().__init__(message, partial_message=partial_message)
        self.content_type = content_type
        self.body = _scrub(body[:_BODY_LIMIT])


class ContentDecodingError(ProtocolError):
    """The body's ``Content-Encoding`` (gzip or deflate) could not be decoded."""


class EventTooLargeError(ProtocolError):
    """One event grew past the decoder's ``max_event_size`` (characters of data).

    Attributes:
        size: How large the event had grown when the limit was crossed.
        limit: The configured limit.
    """

    def __init__(
        self, message: str, *, size: int, limit: int, partial_message: ChatResponse | None = None
    ) -> None:
        super().__init__(message, partial_message=partial_message)
        self.size = size
        self.limit = limit


class LineTooLargeError(ProtocolError):
    """One line grew past the decoder's ``max_line_size`` (characters).

    Attributes:
        size: How long the line had grown when the limit was crossed.
        limit: The configured limit.
    """

    def __init__(
        self, message: str, *, size: int, limit: int, partial_message: ChatResponse | None = None
    ) -> None:
        super().__init__(message, partial_message=partial_message)
        self.size = size
        self.limit = limit


class MalformedEventError(ProtocolError):
    """An event whose data is not valid JSON, or is JSON of the wrong shape.

    The event is never dropped or replaced by a made-up one: it rides here, raw.

    Attributes:
        event: The raw server-sent event (its ``event`` field and ``data`` text).
        details: What was wrong: the JSON error or pydantic's validation errors.
    """

    def __init__(
        self,
        message: str,
        *,
        event: ServerSentEvent,
        details: object = None,
        partial_message: ChatResponse | None = None,
    ) -> None:
        super().__init__(message, partial_message=partial_message)
        self.event = event
        self.details = details


class UnexpectedEventError(StreamError):
    """An event that contradicts the stream so far (a delta for a block that never started, ...).

    Attributes:
        event: The offending event.
    """

    def __init__(
        self, message: str, *, event: ChatEvent, partial_message: ChatResponse | None = None
    ) -> None:
        super().__init__(message, partial_message=partial_message)
        self.event = event


class StreamTruncatedError(StreamError):
    """The stream ended cleanly, but before ``message-end``: the reply is incomplete."""


class StreamInterruptedError(StreamError, httpx.TransportError):
    """The connection broke mid-stream; the httpx error is the ``__cause__``.

    It is also an ``httpx.TransportError``. streamkit never retries once an event was
    delivered: a retry would repeat text the caller has already seen.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_message: ChatResponse | None = None,
        request: httpx.Request | None = None,
    ) -> None:
        httpx.TransportError.__init__(self, message, request=request)
        self.partial_message = partial_message


class StreamTimeoutError(StreamInterruptedError, httpx.TimeoutException):
    """The stream took too long once it had started.

    Attributes:
        reason: ``"idle"`` (no event within ``idle_timeout``), ``"deadline"`` (the whole
            stream passed ``deadline``), or None (httpx's read timeout: no bytes at all).
    """

    def __init__(
        self,
        message: str,
        *,
        partial_message: ChatResponse | None = None,
        request: httpx.Request | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, partial_message=partial_message, request=request)
        self.reason = reason


class ServerStreamError(StreamError):
    """The server reported an error inside a 200 stream.

    Cohere does this with a ``message-end`` whose ``finish_reason`` is ``"ERROR"``; some
    gateways send an ``error`` event instead.

    Attributes:
        error: The server's human-readable reason ("" when it gave none).
        error_type: The server's error code (e.g. ``"INVALID_TOOL_GENERATION"``), if any.
        event: The event that carried the error.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str,
        error_type: str | None,
        event: ChatEvent,
        partial_message: ChatResponse | None = None,
    ) -> None:
        # The reason is the server's text: it may echo the request's key back.
        super().__init__(_scrub(message), partial_message=partial_message)
        self.error = _scrub(error)
        self.error_type = error_type
        self.event = event


class ToolArgumentsError(StreamkitError, ValueError):
    """A tool call's joined argument fragments are not valid JSON.

    Attributes:
        tool_call_id: The call's id.
        name: The tool's name.
        arguments: The raw joined text, exactly as received.
    """

    def __init__(self, message: str, *, tool_call_id: str, name: str, arguments: str) -> None:
        super().__init__(message)
        self.tool_call_id = tool_call_id
        self.name = name
        self.arguments = arguments


# --------------------------------------------------------------------------- structured output


class InvalidSchemaError(StreamkitError, ValueError):
    """A ``response_format`` type (or schema file) that cannot become Cohere's JSON schema.

    Raised before anything is sent: the type has no JSON schema (pydantic cannot build one),
    or its schema is not an object at the top level, which Cohere's JSON mode requires.
    Wrap a list or a scalar in a model: ``class Answer(BaseModel): items: list[Item]``.
    """


class StructuredOutputError(StreamkitError, ValueError):
    """A structured reply whose text is not JSON that validates against its type.

    Raised (as ``on_error``) by ``operators.partial_json`` and ``operators.partial_model``:
    at the first character that cannot continue a JSON document, or when the stream ends
    and the whole text does not validate.

    Attributes:
        text: The reply's raw text so far, exactly as received.
        errors: Pydantic's errors (``ValidationError.errors()``, without URLs); a JSON
            syntax error is pydantic's ``json_invalid`` error.
        partial: The last partial value emitted before the failure (None if none was).
        partial_message: Everything accumulated from the stream, as a ``ChatResponse``.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        errors: list[Any],
        partial: object = None,
        partial_message: ChatResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.text = text
        self.errors = errors
        self.partial = partial
        self.partial_message = partial_message


class ToolDefinitionError(StreamkitError, ValueError):
    """A tool that :func:`~streamkit.run_tools` cannot describe to the model or call.

    Raised when the tools are defined (before any request): a function with ``*args`` or
    ``**kwargs``, a parameter pydantic cannot build a JSON schema for, two tools with one
    name, or something that is not callable.
    """


class ToolError(StreamkitError):
    """Why a tool call produced no result; its message is what the model reads.

    :func:`~streamkit.run_tools` never raises it: it becomes the call's error result
    (arguments that do not validate, an unknown tool name, a timeout, a result that is not
    JSON). A tool may raise it to send a message of its own choosing back to the model;
    any other exception a tool raises is sent as ``"TypeName: message"``.
    """


# --------------------------------------------------------------------------- asyncio, offline


class NoEventLoopError(StreamkitError):
    """An async stream was subscribed with no running asyncio loop to run on.

    Subscribe from inside a coroutine, or pass an ``AsyncIOScheduler`` as the scheduler.
    """


class ServerNotRunningError(StreamkitError):
    """The offline server was asked for its address before ``start()`` (or after ``stop()``)."""


class OfflineRequestError(StreamkitError, ValueError):
    """A request body the offline backend cannot answer; the server turns it into HTTP 400.

    It is also a ``ValueError``: the body's values are what is wrong.
    """


class InvalidUIMessageError(StreamkitError, ValueError):
    """A list of AI SDK ``UIMessage`` objects that cannot become Cohere V2 messages.

    Raised by :func:`streamkit.web.ui_messages_to_cohere`; the message names the first wrong
    field (``messages[2].parts[0].type``). It is also a ``ValueError``: the request body is
    what is wrong, so a web app answers it with 400.
    """


class BatchInputError(StreamkitError, ValueError):
    """A row of a batch's input that is no request: not JSON, not an object, a duplicate id.

    Raised by :mod:`streamkit.batch` before anything is sent, so a run never stops half way
    over its input. The message names the row (``line 12: ...`` for a JSONL file).

    Attributes:
        line: The row's line number in a JSONL file (its 1-based position for an iterable).
    """

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(message)
        self.line = line


class BatchRunError(StreamkitError):
    """A batch run that could not go on: its output file is not a batch's, its workers died.

    Rows already written stay written: run again with the same output to resume.
    """


def status_error_from_body(
    status_code: int,
    body: object,
    *,
    headers: Mapping[str, str],
    request_id: str | None,
) -> APIStatusError:
    """Build the typed error for a non-2xx answer, with the server's message when it gave one."""
    detail = ""
    if isinstance(body, dict):
        raw: Any = body.get("message") or body.get("error") or body.get("detail")
        detail = raw if isinstance(raw, str) else ""
    elif isinstance(body, str):
        detail = body.strip().splitlines()[0][:200] if body.strip() else ""
    cls = status_error_class(status_code)
    message = f"HTTP {status_code}" + (f": {detail}" if detail else "")
    if request_id:
        message += f" (request id {request_id})"
    return cls(
        message,
        status_code=status_code,
        body=_scrub_body(body),
        headers=headers,
        request_id=request_id,
    )


def _scrub_body(body: object) -> object:
    if isinstance(body, str):
        return _scrub(body[:_BODY_LIMIT])
    if isinstance(body, dict):
        return {k: _scrub_body(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_scrub_body(v) for v in body]
    return body


def mask_secrets(
    error: BaseException, secrets: Collection[str], *, request: httpx.Request | None = None
) -> None:
    """Replace each exact secret in ``error`` and the errors it chains to with ``***``.

    Masks every chained error's message (httpx's and h11's included, which may quote raw
    bytes a server echoed) and the server text an error carries (``body``, ``error``,
    ``headers``); with ``request`` (a copy whose credentials are masked), every chained
    httpx error and streamkit error keeps that copy as its ``request`` instead of the one
    that was sent. The client calls this with the credentials its request carried, so a
    key of any shape echoed back by a server never reaches a log or a traceback.
    """
    ordered = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    for item in _chain(error):
        if request is not None and isinstance(item, httpx.RequestError):
            item.request = request
        if not ordered:
            continue
        item.args = tuple(_mask(arg, ordered) for arg in item.args)
        for name in ("body", "error", "headers"):
            if name in vars(item):
                setattr(item, name, _mask(getattr(item, name), ordered))


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        item = todo.pop()
        if id(item) not in seen:
            seen.add(id(item))
            yield item
            todo.extend(e for e in (item.__cause__, item.__context__) if e is not None)


def _mask(value: object, secrets: list[str]) -> object:
    if isinstance(value, bytes):
        for secret in secrets:
            value = value.replace(secret.encode("utf-8", "replace"), b"***")
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, secrets) for v in value]
    return value
