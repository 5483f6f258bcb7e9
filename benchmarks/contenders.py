"""The contenders: one function each, from the same bytes to typed events.

Each parse contender takes the body's chunks (or, for the ``json.loads`` floor, its
payloads) and a ``sink`` called with every event it yields. Contenders that read HTTP get
the chunks through an ``httpx.MockTransport``, so they pay for the same httpx response
machinery and nothing else: no sockets, no threads.

The socket contenders (:data:`SOCKET_CONTENDERS`) are the clients of the latency and
concurrency benchmarks, each reading one stream from the loopback server
(``benchmarks/loopback.py``) through its own transport: httpx, streamkit's native one (on
h11, and on httptools' llhttp), httpx-aiohttp. The transport is what they compare, so a
``MockTransport`` cannot stand in.

``normalise`` turns any contender's events into the JSON objects they stand for, so that the
benchmarks (and ``tests/test_benchmarks.py``) can check every contender decoded the same
events before any timing counts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import httpx
import httpx_aiohttp
import httpx_sse
from pydantic import BaseModel, Field, TypeAdapter

import streamkit
from streamkit import ChatEventDecoder, event_to_dict, from_sse_bytes, to_iterator

__all__ = [
    "BASE_URL",
    "CONTENDERS",
    "MESSAGES",
    "MODEL",
    "SOCKET_CONTENDERS",
    "AsyncTransport",
    "ChunkStream",
    "Contender",
    "SocketContender",
    "httpx_aiohttp_pool",
    "httpx_pool",
    "httpx_sse_pydantic",
    "json_loads_floor",
    "normalise",
    "sdk_chat_stream",
    "streamkit_async_client",
    "streamkit_client",
    "streamkit_decoder",
    "streamkit_observable",
]

Sink = Callable[[Any], None]
Contender = Callable[[list[bytes], Sink], None]

BASE_URL = "http://bench.invalid"
API_KEY = "bench-key"
MODEL = "command-a-03-2025"
MESSAGES = [{"role": "user", "content": "Tell me about the Eiffel tower."}]


class ChunkStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that hands out the given chunks, one read each."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def transport(chunks: list[bytes]) -> httpx.MockTransport:
    """A transport answering every request with ``chunks`` as a 200 event stream."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Type": "text/event-stream"},
            stream=ChunkStream(chunks),
            request=request,
        )

    return httpx.MockTransport(handle)


# ----------------------------------------------------------------------------- streamkit


def streamkit_decoder(chunks: list[bytes], sink: Sink) -> None:
    """streamkit's pure decoder: ``ChatEventDecoder.feed`` per chunk, then ``finish``."""
    decoder = ChatEventDecoder()
    for chunk in chunks:
        for event in decoder.feed(chunk):
            sink(event)
        if decoder.done:
            break
    decoder.finish()


def streamkit_observable(chunks: list[bytes], sink: Sink) -> None:
    """``from_sse_bytes(chunks)`` subscribed: the decoder behind an Observable."""
    from_sse_bytes(chunks).subscribe(on_next=sink, on_error=_raise)


def streamkit_client(chunks: list[bytes], sink: Sink) -> None:
    """``streamkit.Client.chat_stream`` over the mock transport, read with ``to_iterator``."""
    with httpx.Client(transport=transport(chunks)) as http:
        client = streamkit.Client(API_KEY, base_url=BASE_URL, http_client=http)
        for event in to_iterator(client.chat_stream(model=MODEL, messages=MESSAGES)):
            sink(event)


def _raise(error: Exception) -> None:
    raise error


# ----------------------------------------------------------------------------- the SDK


def sdk_chat_stream(chunks: list[bytes], sink: Sink) -> None:
    """The official SDK's ``ClientV2.chat_stream`` over the mock transport."""
    import cohere

    with httpx.Client(transport=transport(chunks)) as http:
        client: Any = cohere.ClientV2(api_key=API_KEY, base_url=BASE_URL, httpx_client=http)
        for event in client.chat_stream(model=MODEL, messages=MESSAGES):
            sink(event)


# ----------------------------------------------------------------------------- httpx-sse


class _Model(BaseModel):
    """Plain pydantic models, written the straightforward way (no extra-field handling)."""


class _ToolCallFunction(_Model):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(_Model):
    id: str | None = None
    type: str | None = None
    function: _ToolCallFunction


class _Source(_Model):
    type: str
    id: str | None = None
    document: dict[str, Any] | None = None
    tool_output: dict[str, Any] | None = None


class _Citation(_Model):
    start: int
    end: int
    text: str
    sources: list[_Source] = []
    type: str | None = None
    content_index: int | None = None


class _Content(_Model):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None


class _StartMessage(_Model):
    role: str
    content: list[Any] | None = None
    tool_plan: str | None = None
    tool_calls: list[Any] | None = None
    citations: list[Any] | None = None


class _MessageStart(_Model):
    type: Literal["message-start"]
    id: str | None = None
    delta: dict[Literal["message"], _StartMessage]


class _ContentMessage(_Model):
    content: _Content


class _ContentStart(_Model):
    type: Literal["content-start"]
    index: int
    delta: dict[Literal["message"], _ContentMessage]


class _ContentDelta(_Model):
    type: Literal["content-delta"]
    index: int
    delta: dict[Literal["message"], _ContentMessage]


class _IndexOnly(_Model):
    index: int


class _ContentEnd(_IndexOnly):
    type: Literal["content-end"]


class _PlanMessage(_Model):
    tool_plan: str


class _ToolPlanDelta(_Model):
    type: Literal["tool-plan-delta"]
    delta: dict[Literal["message"], _PlanMessage]


class _ToolCallMessage(_Model):
    tool_calls: _ToolCall


class _ToolCallStart(_Model):
    type: Literal["tool-call-start"]
    index: int
    delta: dict[Literal["message"], _ToolCallMessage]


class _ToolCallDelta(_Model):
    type: Literal["tool-call-delta"]
    index: int
    delta: dict[Literal["message"], _ToolCallMessage]


class _ToolCallEnd(_IndexOnly):
    type: Literal["tool-call-end"]


class _CitationMessage(_Model):
    citations: _Citation


class _CitationStart(_Model):
    type: Literal["citation-start"]
    index: int
    delta: dict[Literal["message"], _CitationMessage]


class _CitationEnd(_IndexOnly):
    type: Literal["citation-end"]


class _Counts(_Model):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Usage(_Model):
    billed_units: _Counts | None = None
    tokens: _Counts | None = None
    cached_tokens: int | None = None


class _EndDelta(_Model):
    finish_reason: str | None = None
    usage: _Usage | None = None


class _MessageEnd(_Model):
    type: Literal["message-end"]
    delta: _EndDelta


_Event = Annotated[
    _MessageStart
    | _ContentStart
    | _ContentDelta
    | _ContentEnd
    | _ToolPlanDelta
    | _ToolCallStart
    | _ToolCallDelta
    | _ToolCallEnd
    | _CitationStart
    | _CitationEnd
    | _MessageEnd,
    Field(discriminator="type"),
]
_EVENT_ADAPTER: TypeAdapter[_Event] = TypeAdapter(_Event)


def httpx_sse_pydantic(chunks: list[bytes], sink: Sink) -> None:
    """httpx-sse's ``EventSource`` plus a pydantic discriminated union, over the transport."""
    with httpx.Client(transport=transport(chunks)) as http:
        body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True})
        with httpx_sse.connect_sse(http, "POST", BASE_URL + "/v2/chat", content=body) as source:
            for sse in source.iter_sse():
                if sse.data == "[DONE]":
                    break
                sink(_EVENT_ADAPTER.validate_json(sse.data))


# ----------------------------------------------------------------------------- the floor


def json_loads_floor(payloads: list[str], sink: Sink) -> None:
    """``json.loads`` alone on every payload: no SSE, no validation, no objects of our own."""
    loads = json.loads
    for payload in payloads:
        sink(loads(payload))


CONTENDERS: dict[str, Contender] = {
    "streamkit ChatEventDecoder": streamkit_decoder,
    "streamkit from_sse_bytes (Observable)": streamkit_observable,
    "streamkit Client (MockTransport)": streamkit_client,
    "official SDK chat_stream (MockTransport)": sdk_chat_stream,
    "httpx-sse + pydantic (MockTransport)": httpx_sse_pydantic,
}
"""The chunk-reading contenders, by the name the tables use."""


# ----------------------------------------------------------------------------- sockets


SocketContender = Callable[[str, str, Sink], None]
"""Reads one stream of ``model`` from the server at ``base_url``; calls ``sink`` per event."""

AsyncTransport = Literal["httpx", "native", "native-httptools", "httpx-aiohttp"]
"""What a streamkit ``AsyncClient`` reads its streams through in the benchmarks."""

POOL_TIMEOUT = httpx.Timeout(120.0, connect=60.0)
"""Generous: on a saturated loop a connection may take seconds; a trial fails on lag first."""


def httpx_pool() -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with no cap on connections and httpx's 20 idle ones."""
    # No cap on connections (httpx's default of 100 would queue the other streams), but
    # httpx's default of 20 idle ones kept: httpcore scans every connection for each idle
    # one whenever a response closes, so thousands of idle keep-alive connections make
    # each close cost O(N²) (seconds per stream end at N = 1,000).
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    return httpx.AsyncClient(limits=limits, timeout=POOL_TIMEOUT)


def httpx_aiohttp_pool() -> httpx_aiohttp.HttpxAiohttpClient:
    """An httpx ``AsyncClient`` on aiohttp's transport, with no cap on connections."""
    # httpx-aiohttp hands max_connections to aiohttp's TCPConnector(limit=...) only when it
    # is not None, and aiohttp's own default limit is 100: max_connections=None would keep
    # that cap. aiohttp reads a limit of 0 as "no limit". It keeps no count of idle
    # connections (max_keepalive_connections is ignored): each lives for keepalive_expiry.
    limits = httpx.Limits(max_connections=0)
    return httpx_aiohttp.HttpxAiohttpClient(limits=limits, timeout=POOL_TIMEOUT)


@asynccontextmanager
async def streamkit_async_client(
    base_url: str, transport: AsyncTransport
) -> AsyncIterator[streamkit.AsyncClient]:
    """streamkit's ``AsyncClient`` reading through ``transport``, not capped at 100 streams."""
    if transport == "native":
        async with streamkit.AsyncClient(API_KEY, base_url=base_url, transport="native") as ours:
            yield ours
        return
    if transport == "native-httptools":
        native = streamkit.NativeTransport(parser="httptools")
        try:
            async with streamkit.AsyncClient(API_KEY, base_url=base_url, transport=native) as ours:
                yield ours
        finally:
            await native.aclose()  # a transport passed in is the caller's to close
        return
    pool = httpx_aiohttp_pool() if transport == "httpx-aiohttp" else httpx_pool()
    async with pool as http:
        async with streamkit.AsyncClient(API_KEY, base_url=base_url, http_client=http) as ours:
            yield ours


def _streamkit_sync(base_url: str, model: str, sink: Sink) -> None:
    with streamkit.Client(API_KEY, base_url=base_url) as client:
        for event in to_iterator(client.chat_stream(model=model, messages=MESSAGES)):
            sink(event)


def _streamkit_async(transport: AsyncTransport) -> SocketContender:
    async def read(base_url: str, model: str, sink: Sink) -> None:
        finished = asyncio.Event()
        errors: list[Exception] = []

        def on_error(error: Exception) -> None:
            errors.append(error)
            finished.set()

        async with streamkit_async_client(base_url, transport) as client:
            stream = client.chat_stream(model=model, messages=MESSAGES)
            stream.subscribe(sink, on_error, finished.set)
            await finished.wait()
        if errors:
            raise errors[0]

    def contender(base_url: str, model: str, sink: Sink) -> None:
        asyncio.run(read(base_url, model, sink))

    return contender


def _sdk_sync(base_url: str, model: str, sink: Sink) -> None:
    import cohere

    with httpx.Client() as http:
        client: Any = cohere.ClientV2(api_key=API_KEY, base_url=base_url, httpx_client=http)
        for event in client.chat_stream(model=model, messages=MESSAGES):
            sink(event)


def _sdk_async(base_url: str, model: str, sink: Sink) -> None:
    import cohere

    async def read() -> None:
        async with httpx_pool() as http:
            client: Any = cohere.AsyncClientV2(
                api_key=API_KEY, base_url=base_url, httpx_client=http
            )
            async for event in client.chat_stream(model=model, messages=MESSAGES):
                sink(event)

    asyncio.run(read())


SOCKET_CONTENDERS: dict[str, SocketContender] = {
    "streamkit Client (httpx)": _streamkit_sync,
    "streamkit AsyncClient (httpx)": _streamkit_async("httpx"),
    "streamkit AsyncClient (native transport)": _streamkit_async("native"),
    "streamkit AsyncClient (native transport, httptools)": _streamkit_async("native-httptools"),
    "streamkit AsyncClient (httpx-aiohttp)": _streamkit_async("httpx-aiohttp"),
    "official SDK ClientV2 (httpx)": _sdk_sync,
    "official SDK AsyncClientV2 (httpx)": _sdk_async,
}
"""The clients the latency and concurrency benchmarks time, each on a real socket."""


# ----------------------------------------------------------------------------- checking


def normalise(event: Any) -> dict[str, Any]:
    """Any contender's event as the JSON object it stands for.

    streamkit's events dump what the server sent; the SDK's and the plain models dump the
    fields set from the wire (``exclude_unset``). The SDK types usage counts as floats, so
    integral floats become integers again (the generated payloads hold no real floats).
    """
    if isinstance(event, dict):
        return event
    if isinstance(event, BaseModel) and type(event).__module__.startswith("streamkit"):
        dumped: dict[str, Any] = event_to_dict(event)  # type: ignore[arg-type]
    else:
        dumped = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
    normalised: dict[str, Any] = _ints(dumped)
    return normalised


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ints(item) for item in value]
    return value
