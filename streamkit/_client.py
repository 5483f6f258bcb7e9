"""The clients: the only module that talks HTTP.

``Client.chat_stream(...)`` and ``AsyncClient.chat_stream(...)`` build the same request the
official SDK builds for the same arguments, and return a cold Observable of typed events.
Status, content type and transport failures become the typed errors of
:mod:`streamkit.errors`; the API key only ever travels in the ``Authorization`` header and
never appears in a repr, a log line or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import httpx

from streamkit._decode import DEFAULT_MAX_EVENT_SIZE, ChatEventDecoder
from streamkit._events import ChatEvent
from streamkit._message import ChatResponse
from streamkit._request import NOT_GIVEN, NotGiven, RequestOptions, build_chat_body
from streamkit._retry import RetryPolicy
from streamkit._stream import AsyncChatStream, Cancellation, ChatStream, shutdown_socket
from streamkit._version import __version__
from streamkit._watchdog import Watch, watch
from streamkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    MissingAPIKeyError,
    NotEventStreamError,
    StreamInterruptedError,
    StreamkitError,
    StreamTimeoutError,
    mask_secrets,
    status_error_from_body,
)

if TYPE_CHECKING:
    from streamkit._native import NativePool

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "AsyncClient", "Client"]

logger = logging.getLogger("streamkit")

DEFAULT_BASE_URL = "https://api.cohere.com"
"""Cohere's API; override with ``base_url=`` or the ``CO_API_URL`` variable."""

DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
"""Ten seconds to connect, then five minutes for any single read or write."""

_CHAT_PATH = "/v2/chat"
_ERROR_BODY_LIMIT = 64 * 1024
_DRAIN_LIMIT = 64 * 1024
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-trace-id", "x-debug-trace-id")

Value = Any
"""Plain JSON values or typed models (pydantic, including the official SDK's types)."""


class _ClientConfig:
    """What both clients share: the key, the base URL and the request builder."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        max_event_size: int,
        client_name: str | None,
        max_retries: int = 2,
        idle_timeout: float | None = None,
        deadline: float | None = None,
        max_line_size: int | None = None,
    ) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("deadline", deadline)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds or None")
        key = api_key if api_key is not None else os.environ.get("CO_API_KEY")
        if not key:
            raise MissingAPIKeyError(
                "no API key: pass api_key=... or set the CO_API_KEY environment variable"
            )
        self._api_key = key
        url = base_url or os.environ.get("CO_API_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self.max_event_size = max_event_size
        self.client_name = client_name
        self.retry = RetryPolicy(max_retries=max_retries)
        self.idle_timeout = idle_timeout
        self.deadline = deadline
        self.max_line_size = max_line_size

    def plan(self, options: RequestOptions | None) -> _StreamPlan:
        retry = self.retry
        if options and "max_retries" in options:
            retry = dataclasses.replace(retry, max_retries=options["max_retries"])
        return _StreamPlan(
            retry, self.max_event_size, self.max_line_size, self.idle_timeout, self.deadline
        )

    def headers(self, *, stream: bool, extra: Mapping[str, Any] | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": f"cohere-streamkit/{__version__}",
        }
        if self.client_name:
            headers["X-Client-Name"] = self.client_name
        for name, value in (extra or {}).items():
            if value is not None:
                # Header names are case-insensitive: a caller's "authorization" replaces our
                # "Authorization" instead of being sent next to it (two keys in one request).
                for same in [n for n in headers if n.lower() == name.lower()]:
                    del headers[same]
                headers[name] = str(value)
        return headers

    def request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        arguments: Mapping[str, Any],
        *,
        stream: bool,
        options: RequestOptions | None,
    ) -> httpx.Request:
        options = options or {}
        body = build_chat_body(arguments, stream=stream, request_options=options)
        extensions: dict[str, Any] = {}
        if "timeout_in_seconds" in options:
            extensions["timeout"] = httpx.Timeout(options["timeout_in_seconds"]).as_dict()
        return http.build_request(
            "POST",
            self.base_url + _CHAT_PATH,
            # Byte for byte the SDK's encoding (httpx's json=): compact, UTF-8, and NaN or
            # infinity refused with ValueError instead of sent as invalid JSON.
            content=json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode(),
            headers=self.headers(stream=stream, extra=options.get("additional_headers")),
            params=options.get("additional_query_parameters"),
            extensions=extensions,
        )

    def describe(self, arguments: Mapping[str, Any]) -> str:
        return f"model={arguments.get('model')!r} base_url={self.base_url!r}"


@dataclasses.dataclass(frozen=True)
class _StreamPlan:
    """The settings one request streams with."""

    retry: RetryPolicy
    max_event_size: int
    max_line_size: int | None
    idle_timeout: float | None
    deadline: float | None

    def remaining(self, started: float) -> float | None:
        """Seconds left before the overall deadline (None without one)."""
        if self.deadline is None:
            return None
        return self.deadline - (time.monotonic() - started)


def _check_stream_response(response: httpx.Response, body: bytes | None) -> None:
    """Raise the typed error for a non-2xx or non-SSE answer (``body`` already read)."""
    if not response.is_success:
        raise _status_error(response, body or b"")
    content_type = response.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "text/event-stream":
        raise NotEventStreamError(
            f"expected a text/event-stream answer, got {content_type or 'no content type'!r}",
            content_type=content_type,
            body=(body or b"").decode("utf-8", "replace"),
        )


def _needs_body(response: httpx.Response) -> bool:
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return not response.is_success or media_type != "text/event-stream"


def _status_error(response: httpx.Response, raw: bytes) -> APIStatusError:
    text = raw[:_ERROR_BODY_LIMIT].decode("utf-8", "replace")
    body: object
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = text
    request_id = next(
        (response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None
    )
    return status_error_from_body(
        response.status_code, body, headers=dict(response.headers), request_id=request_id
    )


_CREDENTIAL_HEADER = re.compile(r"(?i)authorization|api[-_]?key|token|secret|cookie")


def _request_secrets(request: httpx.Request) -> list[str]:
    """The credentials a request carries, to mask wherever a server echoes them back.

    The key from ``Authorization: Bearer``, and the value of any header the caller added
    whose name says it holds a credential (``X-Api-Key``, ``api-key``, ...).
    """
    found: list[str] = []
    for name, value in request.headers.multi_items():
        if _CREDENTIAL_HEADER.search(name):
            found.append(value)
            _, _, token = value.partition(" ")
            found.append(token.strip())
    return [secret for secret in found if len(secret) >= 8]


def _connection_error(error: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    what = type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"the request timed out before an answer ({what})", request=request)
    return APIConnectionError(f"could not reach the server ({what}: {error})", request=request)


def _interrupted(
    error: httpx.TransportError,
    decoder: ChatEventDecoder,
    request: httpx.Request,
    guard: Watch | None,
    plan: _StreamPlan,
) -> StreamInterruptedError:
    expired = _expired(decoder, request, guard, plan)
    if expired is not None:
        return expired
    what = type(error).__name__
    partial = decoder.accumulator.snapshot()
    count = decoder.events
    if isinstance(error, httpx.TimeoutException):
        return StreamTimeoutError(
            f"the stream timed out after {count} events ({what})",
            partial_message=partial,
            request=request,
        )
    return StreamInterruptedError(
        f"the connection broke after {count} events ({what}: {error})",
        partial_message=partial,
        request=request,
    )


def _expired(
    decoder: ChatEventDecoder,
    request: httpx.Request,
    guard: Watch | None,
    plan: _StreamPlan,
) -> StreamTimeoutError | None:
    """The timeout error if the watchdog cut the stream (its socket shut down), else None."""
    return _timed_out(decoder, request, guard.expired if guard is not None else None, plan)


def _timed_out(
    decoder: ChatEventDecoder, request: httpx.Request, expired: str | None, plan: _StreamPlan
) -> StreamTimeoutError | None:
    """The error for our own timeout ``expired`` (``"idle"``, ``"deadline"``), else None."""
    partial = decoder.accumulator.snapshot()
    count = decoder.events
    if expired == "idle":
        return StreamTimeoutError(
            f"no event for {plan.idle_timeout} s (idle_timeout) after {count} events",
            partial_message=partial,
            request=request,
            reason="idle",
        )
    if expired == "deadline":
        return StreamTimeoutError(
            f"the stream passed its {plan.deadline} s deadline after {count} events",
            partial_message=partial,
            request=request,
            reason="deadline",
        )
    return None


# ----------------------------------------------------------------------------- sync


class Client:
    """A Cohere V2 chat client whose streams are Observables of typed events.

    Args:
        api_key: Your Cohere API key; defaults to the ``CO_API_KEY`` environment variable.
        base_url: The API's root; defaults to ``CO_API_URL`` or ``https://api.cohere.com``.
        timeout: httpx timeout for connecting and for each read (seconds or ``httpx.Timeout``).
        http_client: Your own ``httpx.Client`` (its pool, proxies, transport). You keep
            ownership: ``close()`` leaves it open.
        max_event_size: The largest single event accepted, in characters (default 16 MiB).
        client_name: Sent as ``X-Client-Name``, as the official SDK does.
        max_retries: How often to retry a request that failed before its first event was
            delivered: connection errors, timeouts before the first byte, 429 and 5xx
            (500, 502, 503, 504), honouring ``Retry-After``. Never after an event.
        idle_timeout: Seconds a stream may wait for the server's next event (keep-alive
            comments do not count; time the consumer spends on an event does not count
            either) before it fails with ``StreamTimeoutError``; None to wait forever.
        deadline: Seconds a whole stream may take, retries included, before it fails with
            ``StreamTimeoutError``; None for no limit.
        max_line_size: The longest single line accepted, in characters; None for no limit
            beyond ``max_event_size``. Either limit fails with a typed error at once,
            without reading the rest of the response.

    Raises:
        MissingAPIKeyError: If no key is given and ``CO_API_KEY`` is not set.

    Example:
        >>> from streamkit import Client, OfflineServer, to_iterator
        >>> with OfflineServer() as server, Client("key", base_url=server.base_url) as client:
        ...     stream = client.chat_stream(model="command-a-03-2025",
        ...                                 messages=[{"role": "user", "content": "Hi"}])
        ...     types = [event.type for event in to_iterator(stream)]
        >>> types[0], types[-1]
        ('message-start', 'message-end')
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        client_name: str | None = None,
        max_retries: int = 2,
        idle_timeout: float | None = None,
        deadline: float | None = None,
        max_line_size: int | None = None,
    ) -> None:
        self._config = _ClientConfig(
            api_key,
            base_url,
            max_event_size,
            client_name,
            max_retries=max_retries,
            idle_timeout=idle_timeout,
            deadline=deadline,
            max_line_size=max_line_size,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        if http_client is not None and timeout is not DEFAULT_TIMEOUT:
            self._http.timeout = httpx.Timeout(timeout)

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._config.base_url

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the ``httpx.Client`` was yours)."""
        if self._owns_http:
            self._http.close()

    def chat_stream(
        self,
        *,
        model: str,
        messages: Sequence[Value],
        tools: Sequence[Value] | None | NotGiven = NOT_GIVEN,
        strict_tools: bool | None | NotGiven = NOT_GIVEN,
        documents: Sequence[Value] | None | NotGiven = NOT_GIVEN,
        citation_options: Value | None | NotGiven = NOT_GIVEN,
        response_format: Value | None | NotGiven = NOT_GIVEN,
        safety_mode: str | None | NotGiven = NOT_GIVEN,
        max_tokens: int | None | NotGiven = NOT_GIVEN,
        stop_sequences: Sequence[str] | None | NotGiven = NOT_GIVEN,
        temperature: float | None | NotGiven = NOT_GIVEN,
        seed: int | None | NotGiven = NOT_GIVEN,
        frequency_penalty: float | None | NotGiven = NOT_GIVEN,
        presence_penalty: float | None | NotGiven = NOT_GIVEN,
        k: int | None | NotGiven = NOT_GIVEN,
        p: float | None | NotGiven = NOT_GIVEN,
        logprobs: bool | None | NotGiven = NOT_GIVEN,
        tool_choice: str | None | NotGiven = NOT_GIVEN,
        thinking: Value | None | NotGiven = NOT_GIVEN,
        priority: int | None | NotGiven = NOT_GIVEN,
        request_options: RequestOptions | None = None,
    ) -> ChatStream:
        """Stream a chat reply as a cold Observable of typed events.

        Takes the official SDK's ``chat_stream`` arguments (plain dicts or typed models)
        and sends the same request body. Nothing is sent until something subscribes; each
        subscription sends its own request, on a daemon thread, so ``subscribe`` returns
        at once. Disposing the subscription closes the response.

        Returns:
            An ``Observable[ChatEvent]``. It completes after ``message-end`` and fails with
            a :mod:`streamkit.errors` error, which carries the partial message for errors
            raised after the stream started.
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        config, http = self._config, self._http

        def events(cancellation: Cancellation) -> Iterator[ChatEvent]:
            request = config.request(http, arguments, stream=True, options=request_options)
            plan = config.plan(request_options)
            try:
                yield from _stream_events(http, request, plan, cancellation)
            except StreamkitError as error:
                mask_secrets(error, _request_secrets(request))
                raise

        return ChatStream(events, threaded=True, description=config.describe(arguments))

    def chat(
        self,
        *,
        model: str,
        messages: Sequence[Value],
        request_options: RequestOptions | None = None,
        **arguments: Any,
    ) -> ChatResponse:
        """Get a whole chat reply without streaming (the non-streaming ``/v2/chat``).

        Takes the same arguments as :meth:`chat_stream`.

        Raises:
            APIStatusError: For a non-2xx answer (a subclass per status).
            APIConnectionError: If the server could not be reached.
        """
        arguments.update(model=model, messages=messages)
        request = self._config.request(self._http, arguments, stream=False, options=request_options)
        plan = self._config.plan(request_options)
        retries = 0
        while True:
            try:
                try:
                    response = self._http.send(request)
                except httpx.TransportError as error:
                    raise _connection_error(error, request) from error
                if not response.is_success:
                    raise _status_error(response, response.content)
                return ChatResponse.model_validate_json(response.content)
            except (APIConnectionError, APIStatusError) as error:
                delay = _retry_delay(plan, retries, error)
                if delay is None:
                    mask_secrets(error, _request_secrets(request))
                    raise
                _log_retry(error, delay, retries, plan)
                time.sleep(delay)
                retries += 1


def _stream_events(
    http: httpx.Client,
    request: httpx.Request,
    plan: _StreamPlan,
    cancellation: Cancellation,
) -> Iterator[ChatEvent]:
    """Stream one request's events, retrying only while none has been delivered."""
    started = time.monotonic()
    retries = 0
    while True:
        delivered = False
        try:
            for event in _stream_once(http, request, plan, cancellation, started):
                delivered = True
                yield event
            return
        except (APIConnectionError, APIStatusError, StreamInterruptedError) as error:
            delay = None if delivered else _retry_delay(plan, retries, error)
            if delay is None or cancellation.cancelled:
                raise
            remaining = plan.remaining(started)
            if remaining is not None and delay >= remaining:
                raise
            _log_retry(error, delay, retries, plan)
            if cancellation.wait(delay):
                return
            retries += 1


def _stream_once(
    http: httpx.Client,
    request: httpx.Request,
    plan: _StreamPlan,
    cancellation: Cancellation,
    started: float,
) -> Iterator[ChatEvent]:
    try:
        response = http.send(request, stream=True)
    except httpx.TransportError as error:
        raise _connection_error(error, request) from error
    decoder = ChatEventDecoder(max_event_size=plan.max_event_size, max_line_size=plan.max_line_size)
    cancellation.attach(response)
    guard = _watch(plan, started, cancellation.abort_response)
    try:
        if _needs_body(response):
            _check_stream_response(response, response.read())
        chunks = response.iter_bytes()
        try:
            for chunk in chunks:
                for event in decoder.feed(chunk):
                    # The idle clock stops while the consumer has the event: a slow consumer
                    # is not a silent server.
                    if guard is not None:
                        guard.hold()
                    yield event
                    if guard is not None:
                        guard.touch()
                if decoder.done:
                    _drain(chunks)
                    return
        except httpx.TransportError as error:
            if cancellation.cancelled:
                return
            raise _interrupted(error, decoder, request, guard, plan) from error
        if cancellation.cancelled:
            return
        timed_out = _expired(decoder, request, guard, plan)
        if timed_out is not None:  # the shut-down socket read as a clean end of body
            raise timed_out
        decoder.finish()
    finally:
        if guard is not None:
            guard.stop()
        cancellation.detach()
        response.close()


def _drain(chunks: Iterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (normally just the end of the body) to reuse the connection."""
    seen = 0
    try:
        for chunk in chunks:
            seen += len(chunk)
            if seen > _DRAIN_LIMIT:
                return
    except httpx.TransportError:
        return


def _watch(plan: _StreamPlan, started: float, abort: Callable[[], None]) -> Watch | None:
    return watch(plan.idle_timeout, plan.remaining(started), lambda _reason: abort())


def _retry_delay(plan: _StreamPlan, retries: int, error: Exception) -> float | None:
    """How long to wait before retrying after ``error``, or None not to retry."""
    if isinstance(error, APIStatusError):
        return plan.retry.delay_for_status(retries, error.status_code, error.headers)
    if isinstance(error, StreamTimeoutError) and error.reason is not None:
        return None  # our own idle timeout or deadline: waiting again would not help
    return plan.retry.delay_for_transport_error(retries)


def _log_retry(error: Exception, delay: float, retries: int, plan: _StreamPlan) -> None:
    if isinstance(error, APIStatusError):
        what = f"HTTP {error.status_code}"
    else:
        what = type(error).__name__
    logger.info(
        "retrying after %s in %.2f s (retry %d of %d)",
        what,
        delay,
        retries + 1,
        plan.retry.max_retries,
    )


# ----------------------------------------------------------------------------- async


class AsyncClient:
    """The asyncio twin of :class:`Client`: its streams run on the caller's loop.

    Takes the same arguments as :class:`Client`, with an ``httpx.AsyncClient`` as
    ``http_client``. The connection pool it makes for itself is httpx's default, 100
    connections: for more concurrent streams pass your own, e.g.
    ``http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=1000))``.

    Args:
        transport: How ``chat_stream`` reads its response. ``"httpx"`` (the default) goes
            through httpx's async stack. ``"native"`` speaks HTTP/1.1 directly on an
            ``asyncio.Protocol`` (``streamkit._native``): events are decoded and delivered
            inside the socket's read callback, several times cheaper in CPU per event, so
            one process sustains several times more concurrent streams, with no cap on
            connections. Same request bytes, retries, timeouts, typed errors and masking;
            a transport failure's ``__cause__`` is an httpx exception caused in turn by
            the ``OSError`` or ``ssl.SSLError``. It keeps its own keep-alive pool
            (``aclose()`` closes it), verifies TLS certificates as httpx does,
            decodes gzip and deflate, and does not support proxies (the ``HTTP(S)_PROXY``
            variables are ignored), HTTP/2 or a caller's ``http_client`` (a
            ``ValueError``). ``chat()`` always uses httpx.

    Raises:
        ValueError: For an unknown ``transport``, or ``"native"`` with ``http_client``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        client_name: str | None = None,
        max_retries: int = 2,
        idle_timeout: float | None = None,
        deadline: float | None = None,
        max_line_size: int | None = None,
        transport: Literal["httpx", "native"] = "httpx",
    ) -> None:
        if transport not in ("httpx", "native"):
            raise ValueError(f"transport must be 'httpx' or 'native', not {transport!r}")
        if transport == "native" and http_client is not None:
            raise ValueError(
                "transport='native' reads streams without httpx: it cannot use an http_client"
            )
        self._config = _ClientConfig(
            api_key,
            base_url,
            max_event_size,
            client_name,
            max_retries=max_retries,
            idle_timeout=idle_timeout,
            deadline=deadline,
            max_line_size=max_line_size,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        if http_client is not None and timeout is not DEFAULT_TIMEOUT:
            self._http.timeout = httpx.Timeout(timeout)
        self._native: NativePool | None = None
        if transport == "native":
            from streamkit._native import NativePool  # it imports this module: not at the top

            self._native = NativePool()

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._config.base_url

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the ``httpx.AsyncClient`` was yours)."""
        if self._native is not None:
            self._native.close()
        if self._owns_http:
            await self._http.aclose()

    def chat_stream(
        self,
        *,
        model: str,
        messages: Sequence[Value],
        tools: Sequence[Value] | None | NotGiven = NOT_GIVEN,
        strict_tools: bool | None | NotGiven = NOT_GIVEN,
        documents: Sequence[Value] | None | NotGiven = NOT_GIVEN,
        citation_options: Value | None | NotGiven = NOT_GIVEN,
        response_format: Value | None | NotGiven = NOT_GIVEN,
        safety_mode: str | None | NotGiven = NOT_GIVEN,
        max_tokens: int | None | NotGiven = NOT_GIVEN,
        stop_sequences: Sequence[str] | None | NotGiven = NOT_GIVEN,
        temperature: float | None | NotGiven = NOT_GIVEN,
        seed: int | None | NotGiven = NOT_GIVEN,
        frequency_penalty: float | None | NotGiven = NOT_GIVEN,
        presence_penalty: float | None | NotGiven = NOT_GIVEN,
        k: int | None | NotGiven = NOT_GIVEN,
        p: float | None | NotGiven = NOT_GIVEN,
        logprobs: bool | None | NotGiven = NOT_GIVEN,
        tool_choice: str | None | NotGiven = NOT_GIVEN,
        thinking: Value | None | NotGiven = NOT_GIVEN,
        priority: int | None | NotGiven = NOT_GIVEN,
        request_options: RequestOptions | None = None,
    ) -> AsyncChatStream:
        """Stream a chat reply as a cold Observable that runs on the caller's asyncio loop.

        Same arguments and request body as :meth:`Client.chat_stream`. Each subscription
        starts one task on the running loop; disposing it cancels the task and closes the
        response. Use :func:`streamkit.to_async_iterator` for ``async for``.
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        config, http = self._config, self._http

        async def events() -> AsyncIterator[ChatEvent]:
            request = config.request(http, arguments, stream=True, options=request_options)
            plan = config.plan(request_options)
            # aclosing: closing this generator must close the inner ones at once. An async
            # generator abandoned mid-iteration is only closed later, by the loop's
            # finaliser hook, and until then its response holds the pooled connection.
            try:
                async with contextlib.aclosing(_astream_events(http, request, plan)) as inner:
                    async for event in inner:
                        yield event
            except StreamkitError as error:
                mask_secrets(error, _request_secrets(request))
                raise

        if self._native is not None:
            return self._native_stream(arguments, request_options, self._native)
        return AsyncChatStream(events, description=config.describe(arguments))

    def _native_stream(
        self, arguments: dict[str, Any], request_options: RequestOptions | None, pool: NativePool
    ) -> AsyncChatStream:
        from streamkit._native import NativeStream, iterate

        config, http = self._config, self._http

        def open_stream() -> NativeStream:
            request = config.request(http, arguments, stream=True, options=request_options)
            return NativeStream(pool, request, config.plan(request_options))

        async def events() -> AsyncIterator[ChatEvent]:
            # The request is built on the first __anext__, as with httpx.
            async with contextlib.aclosing(iterate(open_stream())) as inner:
                async for event in inner:
                    yield event

        async def push(on_next: Callable[[ChatEvent], None]) -> None:
            await open_stream().run(on_next)

        return AsyncChatStream(events, push=push, description=config.describe(arguments))

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[Value],
        request_options: RequestOptions | None = None,
        **arguments: Any,
    ) -> ChatResponse:
        """Get a whole chat reply without streaming; see :meth:`Client.chat`."""
        arguments.update(model=model, messages=messages)
        request = self._config.request(self._http, arguments, stream=False, options=request_options)
        plan = self._config.plan(request_options)
        retries = 0
        while True:
            try:
                try:
                    response = await self._http.send(request)
                except httpx.TransportError as error:
                    raise _connection_error(error, request) from error
                if not response.is_success:
                    raise _status_error(response, response.content)
                return ChatResponse.model_validate_json(response.content)
            except (APIConnectionError, APIStatusError) as error:
                delay = _retry_delay(plan, retries, error)
                if delay is None:
                    mask_secrets(error, _request_secrets(request))
                    raise
                _log_retry(error, delay, retries, plan)
                await asyncio.sleep(delay)
                retries += 1


async def _astream_events(
    http: httpx.AsyncClient, request: httpx.Request, plan: _StreamPlan
) -> AsyncGenerator[ChatEvent, None]:
    """Stream one request's events on this loop, retrying only while none was delivered."""
    started = time.monotonic()
    retries = 0
    while True:
        delivered = False
        try:
            # aclosing: see AsyncClient.chat_stream; the response is closed before aclose()
            # returns.
            async with contextlib.aclosing(_astream_once(http, request, plan, started)) as once:
                async for event in once:
                    delivered = True
                    yield event
            return
        except (APIConnectionError, APIStatusError, StreamInterruptedError) as error:
            delay = None if delivered else _retry_delay(plan, retries, error)
            if delay is None:
                raise
            remaining = plan.remaining(started)
            if remaining is not None and delay >= remaining:
                raise
            _log_retry(error, delay, retries, plan)
            await asyncio.sleep(delay)
            retries += 1


async def _astream_once(
    http: httpx.AsyncClient, request: httpx.Request, plan: _StreamPlan, started: float
) -> AsyncGenerator[ChatEvent, None]:
    try:
        response = await http.send(request, stream=True)
    except httpx.TransportError as error:
        raise _connection_error(error, request) from error
    decoder = ChatEventDecoder(max_event_size=plan.max_event_size, max_line_size=plan.max_line_size)
    guard = _watch(plan, started, lambda: shutdown_socket(response))
    try:
        if _needs_body(response):
            _check_stream_response(response, await response.aread())
        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    # As in _stream_once: the consumer's time is not the server's silence.
                    if guard is not None:
                        guard.hold()
                    yield event
                    if guard is not None:
                        guard.touch()
                if decoder.done:
                    await _adrain(chunks)
                    return
        except httpx.TransportError as error:
            raise _interrupted(error, decoder, request, guard, plan) from error
        timed_out = _expired(decoder, request, guard, plan)
        if timed_out is not None:  # the shut-down socket read as a clean end of body
            raise timed_out
        decoder.finish()
    finally:
        if guard is not None:
            guard.stop()
        await response.aclose()


async def _adrain(chunks: AsyncIterator[bytes]) -> None:
    seen = 0
    try:
        async for chunk in chunks:
            seen += len(chunk)
            if seen > _DRAIN_LIMIT:
                return
    except httpx.TransportError:
        return
