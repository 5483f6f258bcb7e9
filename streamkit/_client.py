"""The clients: arguments, configuration and the choice of transport.

``Client.chat_stream(...)`` and ``AsyncClient.chat_stream(...)`` build the same request the
official SDK builds for the same arguments, and return a cold Observable of typed events.
Each subscription hands the request to a transport (``_httpx_sync``, ``_httpx_async``,
``_native``) with a :class:`~streamkit._engine.StreamEngine`, which makes every decision
about it: typed errors, retries, timeouts and masking. The API key only ever travels in
the ``Authorization`` header and never appears in a repr, a log line or an error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx

from streamkit._decode import DEFAULT_MAX_EVENT_SIZE
from streamkit._engine import ACCEPT_ENCODING, StreamEngine, StreamPlan
from streamkit._events import ChatEvent
from streamkit._httpx_async import AsyncHttpxTransport
from streamkit._httpx_sync import HttpxTransport
from streamkit._message import ChatResponse
from streamkit._native import NativeTransport
from streamkit._offline import OfflineServer
from streamkit._request import (
    NOT_GIVEN,
    NotGiven,
    RequestOptions,
    build_chat_body,
    check_header,
)
from streamkit._retry import RetryPolicy
from streamkit._stream import AsyncChatStream, Cancellation, ChatStream
from streamkit._transport import DEFAULT_TIMEOUT, AsyncTransport, Outgoing, Transport
from streamkit._version import __version__
from streamkit.errors import MissingAPIKeyError

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "AsyncClient", "Client"]

DEFAULT_BASE_URL = "https://api.cohere.com"
"""Cohere's API; override with ``base_url=`` or the ``CO_API_URL`` variable."""

_CHAT_PATH = "/v2/chat"

Value = Any
"""Plain JSON values or typed models (pydantic, including the official SDK's types)."""


class _ClientConfig:
    """What both clients share: the key, the base URL, the limits and the request builder."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        max_event_size: int,
        client_name: str | None,
        max_retries: int,
        idle_timeout: float | None,
        deadline: float | None,
        max_line_size: int | None,
    ) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("deadline", deadline)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds or None")
        key = api_key if api_key is not None else os.environ.get("CO_API_KEY")
        if not key:
            raise MissingAPIKeyError(
                "no API key: pass api_key=... or set the CO_API_KEY environment variable"
                " (or use Client.offline() for the built-in offline backend)"
            )
        check_header("Authorization", f"Bearer {key}")
        if client_name:
            check_header("X-Client-Name", client_name)
        self._api_key = key
        url = base_url or os.environ.get("CO_API_URL") or DEFAULT_BASE_URL
        self.base_url = _checked_base_url(url)
        self.client_name = client_name
        self.retry = RetryPolicy(max_retries=max_retries)
        self.max_event_size = max_event_size
        self.max_line_size = max_line_size
        self.idle_timeout = idle_timeout
        self.deadline = deadline

    def plan(self, options: RequestOptions | None) -> StreamPlan:
        """The plan for one request: the client's, with ``max_retries`` overridden."""
        retry = self.retry
        if options and "max_retries" in options:
            retry = dataclasses.replace(retry, max_retries=options["max_retries"])
        return StreamPlan(
            retry,
            max_event_size=self.max_event_size,
            max_line_size=self.max_line_size,
            idle_timeout=self.idle_timeout,
            deadline=self.deadline,
        )

    def headers(self, *, stream: bool, extra: Mapping[str, Any] | None) -> dict[str, str]:
        """Every header of a request, each checked before anything is sent."""
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": f"cohere-streamkit/{__version__}",
        }
        if self.client_name:
            headers["X-Client-Name"] = self.client_name
        for name, value in (extra or {}).items():
            if value is not None:
                # Header names are case-insensitive: a caller's "authorization" replaces our
                # "Authorization" instead of being sent next to it (two keys in one request).
                for same in [n for n in headers if n.lower() == str(name).lower()]:
                    del headers[same]
                headers[name] = str(value)
        for name, value in headers.items():
            check_header(name, value)
        return headers

    def outgoing(
        self, arguments: Mapping[str, Any], *, stream: bool, options: RequestOptions | None
    ) -> Outgoing:
        """The request for these arguments (headers checked, body encoded)."""
        options = options or {}
        body = build_chat_body(arguments, stream=stream, request_options=options)
        return Outgoing(
            url=self.base_url + _CHAT_PATH,
            headers=self.headers(stream=stream, extra=options.get("additional_headers")),
            # Byte for byte the SDK's encoding (httpx's json=): compact, UTF-8, and NaN or
            # infinity refused with ValueError instead of sent as invalid JSON.
            content=json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode(),
            params=options.get("additional_query_parameters"),
            timeout=options.get("timeout_in_seconds"),
        )

    def describe(self, arguments: Mapping[str, Any]) -> str:
        return f"model={arguments.get('model')!r} base_url={self.base_url!r}"


def _checked_base_url(url: str) -> str:
    """``url`` without a trailing slash, or a ValueError naming it (before any request)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise ValueError(f"base_url {url!r} is not a URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"base_url {url!r} must be an http:// or https:// URL with a host,"
            " e.g. 'https://api.cohere.com'"
        )
    if parsed.query or parsed.fragment:
        raise ValueError(f"base_url {url!r} must not have a query or a fragment")
    return url.rstrip("/")


_C = TypeVar("_C")


def _on_offline_backend(pacing: float, build: Callable[[str], _C]) -> tuple[_C, OfflineServer]:
    """Start an offline backend and build a client on its URL (the backend stops if that fails)."""
    server = OfflineServer(pacing=pacing).start()
    try:
        return build(server.base_url), server
    except BaseException:
        server.stop()
        raise


# ----------------------------------------------------------------------------- sync


class Client:
    """A Cohere V2 chat client whose streams are Observables of typed events.

    Args:
        api_key: Your Cohere API key; defaults to the ``CO_API_KEY`` environment variable.
        base_url: The API's root; defaults to ``CO_API_URL`` or ``https://api.cohere.com``.
        timeout: httpx timeout for connecting and for each read (seconds or ``httpx.Timeout``).
        http_client: Your own ``httpx.Client`` (its pool, proxies, transport). You keep
            ownership: ``close()`` leaves it open. Shorthand for
            ``transport=HttpxTransport(http_client)``.
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
        transport: How requests travel: an :class:`HttpxTransport` (the default makes one
            with ``timeout``).

    Raises:
        MissingAPIKeyError: If no key is given and ``CO_API_KEY`` is not set.
        InvalidHeaderError: If ``client_name`` cannot be sent as a header.
        ValueError: If both ``http_client`` and ``transport`` are given.

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
        transport: Transport | None = None,
    ) -> None:
        if transport is not None and http_client is not None:
            raise ValueError("pass http_client or transport, not both")
        if transport is not None and timeout is not DEFAULT_TIMEOUT:
            raise ValueError("a transport has its own timeout: pass timeout= to the transport")
        self._config = _ClientConfig(
            api_key,
            base_url,
            max_event_size,
            client_name,
            max_retries,
            idle_timeout,
            deadline,
            max_line_size,
        )
        self._owns_transport = transport is None
        self._offline: OfflineServer | None = None
        if http_client is not None and timeout is not DEFAULT_TIMEOUT:
            http_client.timeout = httpx.Timeout(timeout)
        self._transport: Transport = transport or HttpxTransport(http_client, timeout=timeout)

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._config.base_url

    @property
    def transport(self) -> Transport:
        """The transport requests travel by."""
        return self._transport

    @property
    def is_offline(self) -> bool:
        """Whether this client was made by :meth:`offline` (answers from the built-in backend)."""
        return self._offline is not None

    @classmethod
    def offline(
        cls,
        *,
        pacing: float = 0.0,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        client_name: str | None = None,
        max_retries: int = 2,
        idle_timeout: float | None = None,
        deadline: float | None = None,
        max_line_size: int | None = None,
    ) -> Client:
        """A client on the built-in offline backend, started now and stopped by ``close()``.

        No key and no network: an :class:`~streamkit.OfflineServer` on 127.0.0.1 answers
        with scripted replies in Cohere's exact stream format. Nothing ever falls back to
        it silently; this is the one way in.

        Args:
            pacing: Seconds between streamed events (about 0.03 to watch a reply appear).
            timeout: As for :class:`Client`; so are the other arguments.
            max_event_size: As for :class:`Client`.
            client_name: As for :class:`Client`.
            max_retries: As for :class:`Client`.
            idle_timeout: As for :class:`Client`.
            deadline: As for :class:`Client`.
            max_line_size: As for :class:`Client`.

        The backend is on loopback, so proxies from the environment are not used for it.

        Example:
            >>> from streamkit import Client
            >>> with Client.offline() as client:
            ...     reply = client.chat(model="command-a-03-2025",
            ...                         messages=[{"role": "user", "content": "Hi"}])
            >>> reply.finish_reason
            'COMPLETE'
        """
        client, server = _on_offline_backend(
            pacing,
            lambda base_url: cls(
                "offline",
                base_url=base_url,
                max_event_size=max_event_size,
                client_name=client_name,
                max_retries=max_retries,
                idle_timeout=idle_timeout,
                deadline=deadline,
                max_line_size=max_line_size,
                transport=HttpxTransport(timeout=timeout, trust_env=False),
            ),
        )
        client._offline = server
        client._owns_transport = True
        return client

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the transport or ``httpx.Client`` was yours).

        A client made by :meth:`offline` also stops its backend.
        """
        if self._owns_transport:
            self._transport.close()
        if self._offline is not None:
            self._offline.stop()

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

        ``response_format`` also takes a type: a pydantic model class (or any type
        pydantic's ``TypeAdapter`` takes) is sent as Cohere's JSON-schema format, built by
        :func:`streamkit.json_response_format`; pipe the stream through
        ``operators.partial_model(Model)`` to get the object as it fills in.

        Returns:
            An ``Observable[ChatEvent]``. It completes after ``message-end`` and fails with
            a :mod:`streamkit.errors` error, which carries the partial message for errors
            raised after the stream started.

        Raises:
            InvalidHeaderError: A header in ``request_options`` cannot be sent (nothing is).
            InvalidSchemaError: ``response_format`` is a type without a JSON object schema.
            ValueError: An argument cannot be encoded as JSON (NaN, infinity).
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        config, transport = self._config, self._transport
        outgoing = config.outgoing(arguments, stream=True, options=request_options)
        plan = config.plan(request_options)

        def events(cancellation: Cancellation) -> Iterator[ChatEvent]:
            engine = StreamEngine(transport.build_request(outgoing), plan)
            return transport.stream(engine, cancellation)

        return ChatStream(events, threaded=True, description=config.describe(arguments))

    def chat(
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
    ) -> ChatResponse:
        """Get a whole chat reply without streaming (the non-streaming ``/v2/chat``).

        Takes the same arguments as :meth:`chat_stream` (an unknown one is a ``TypeError``),
        with the same retries, limits, deadline and typed errors.

        Returns:
            The reply, as Cohere's non-streaming response: ``reply.text``, ``reply.usage``,
            ``reply.message.tool_calls``, ...

        Raises:
            APIStatusError: For a non-2xx answer (a subclass per status).
            APIConnectionError: If the server could not be reached.
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        outgoing = self._config.outgoing(arguments, stream=False, options=request_options)
        engine = StreamEngine(
            self._transport.build_request(outgoing),
            self._config.plan(request_options),
            whole=True,
        )
        for _ in self._transport.stream(engine, Cancellation()):
            pass  # a whole answer yields no events
        return engine.answer()


# ----------------------------------------------------------------------------- async


class AsyncClient:
    """The asyncio twin of :class:`Client`: its streams run on the caller's loop.

    Takes the same arguments as :class:`Client`, with an ``httpx.AsyncClient`` as
    ``http_client`` and an asyncio transport as ``transport``.

    Args:
        transport: How requests travel. ``"httpx"`` (the default) or an
            :class:`AsyncHttpxTransport` goes through httpx's async stack, with its
            proxies and any ``httpx.AsyncClient`` (for instance
            ``httpx_aiohttp.HttpxAiohttpClient``). ``"native"`` or a
            :class:`NativeTransport` speaks HTTP/1.1 (parsed by h11, as in httpx, or by
            llhttp with ``NativeTransport(parser="httptools")``) on an
            ``asyncio.Protocol`` and decodes events inside the socket's read callback:
            several times less CPU per event, so one process sustains several times more
            concurrent streams; no proxies (it refuses with ``ProxyNotSupportedError``
            rather than bypass one) and no HTTP/2. The same engine decides everything else:
            request bytes, retries, timeouts, typed errors and masking are identical.

    Raises:
        ValueError: For an unknown ``transport``, or a transport with ``http_client``.
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
        transport: Literal["httpx", "native"] | AsyncTransport = "httpx",
    ) -> None:
        if isinstance(transport, str) and transport not in ("httpx", "native"):
            raise ValueError(
                f"transport must be 'httpx', 'native' or a transport, not {transport!r}"
            )
        if transport != "httpx" and http_client is not None:
            raise ValueError("pass http_client or transport, not both")
        if not isinstance(transport, str) and timeout is not DEFAULT_TIMEOUT:
            raise ValueError("a transport has its own timeout: pass timeout= to the transport")
        self._config = _ClientConfig(
            api_key,
            base_url,
            max_event_size,
            client_name,
            max_retries,
            idle_timeout,
            deadline,
            max_line_size,
        )
        self._owns_transport = isinstance(transport, str)
        self._offline: OfflineServer | None = None
        chosen: AsyncTransport
        if transport == "native":
            chosen = NativeTransport(timeout=timeout)
        elif transport == "httpx":
            if http_client is not None and timeout is not DEFAULT_TIMEOUT:
                http_client.timeout = httpx.Timeout(timeout)
            chosen = AsyncHttpxTransport(http_client, timeout=timeout)
        else:
            assert not isinstance(transport, str)
            chosen = transport
        self._transport = chosen

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._config.base_url

    @property
    def transport(self) -> AsyncTransport:
        """The transport requests travel by."""
        return self._transport

    @property
    def is_offline(self) -> bool:
        """Whether this client was made by :meth:`offline` (answers from the built-in backend)."""
        return self._offline is not None

    @classmethod
    def offline(
        cls,
        *,
        pacing: float = 0.0,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        client_name: str | None = None,
        max_retries: int = 2,
        idle_timeout: float | None = None,
        deadline: float | None = None,
        max_line_size: int | None = None,
        transport: Literal["httpx", "native"] = "httpx",
    ) -> AsyncClient:
        """An async client on the built-in offline backend; ``aclose()`` stops it.

        Takes :meth:`Client.offline`'s arguments, and ``transport`` (``"httpx"`` or
        ``"native"``) as for :class:`AsyncClient`.
        """
        chosen: AsyncTransport
        if transport == "native":
            chosen = NativeTransport(timeout=timeout, trust_env=False)
        else:
            chosen = AsyncHttpxTransport(timeout=timeout, trust_env=False)
        client, server = _on_offline_backend(
            pacing,
            lambda base_url: cls(
                "offline",
                base_url=base_url,
                max_event_size=max_event_size,
                client_name=client_name,
                max_retries=max_retries,
                idle_timeout=idle_timeout,
                deadline=deadline,
                max_line_size=max_line_size,
                transport=chosen,
            ),
        )
        client._offline = server
        client._owns_transport = True
        return client

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the transport or ``httpx.AsyncClient`` was yours).

        A client made by :meth:`offline` also stops its backend.
        """
        if self._owns_transport:
            await self._transport.aclose()
        if self._offline is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._offline.stop)

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

        Same arguments, request body and errors as :meth:`Client.chat_stream`. Each
        subscription starts one task on the running loop; disposing it cancels the task
        and closes the response. Use :func:`streamkit.to_async_iterator` for ``async for``.
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        config, transport = self._config, self._transport
        outgoing = config.outgoing(arguments, stream=True, options=request_options)
        plan = config.plan(request_options)

        def engine() -> StreamEngine:
            return StreamEngine(transport.build_request(outgoing), plan)

        def events() -> AsyncIterator[ChatEvent]:
            return transport.stream(engine())

        push = transport.push
        return AsyncChatStream(
            events,
            push=None if push is None else lambda on_next: push(engine(), on_next),
            description=config.describe(arguments),
        )

    async def chat(
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
    ) -> ChatResponse:
        """Get a whole chat reply without streaming; see :meth:`Client.chat`.

        Example:
            >>> import asyncio
            >>> from streamkit import AsyncClient
            >>> async def main() -> str | None:
            ...     async with AsyncClient.offline() as client:
            ...         reply = await client.chat(model="command-a-03-2025",
            ...                                   messages=[{"role": "user", "content": "Hi"}])
            ...     return reply.finish_reason
            >>> asyncio.run(main())
            'COMPLETE'
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        outgoing = self._config.outgoing(arguments, stream=False, options=request_options)
        engine = StreamEngine(
            self._transport.build_request(outgoing),
            self._config.plan(request_options),
            whole=True,
        )
        async for _ in self._transport.stream(engine):
            pass  # a whole answer yields no events
        return engine.answer()
