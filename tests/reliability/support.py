"""What the reliability tests share: clients on a pool of one, counting transports, resources.

The section letters (B, F, C, L, S, N) refer to ``reliability-tests.md`` §2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from streamkit import (
    AsyncClient,
    ChatEvent,
    Client,
    to_async_iterator,
    to_iterator,
)
from streamkit._retry import RetryPolicy
from tests.collect import Collector
from tests.test_client import KEY, MESSAGES, apool1_client
from tests.transports import ASYNC_TRANSPORTS, AsyncTransportName, async_client, pooled_connections

__all__ = [
    "ASYNC_MODES",
    "KEY",
    "MESSAGES",
    "MODES",
    "CountingAsyncTransport",
    "CountingTransport",
    "Outcome",
    "acollect",
    "apool1_client",
    "async_wait_until",
    "collect",
    "fast_backoff",
    "open_sockets",
    "pooled_connections",
    "run_stream",
    "transport_of",
    "wait_until",
]

Outcome = tuple[list[ChatEvent], BaseException | None]
"""The events a stream delivered, and the error it ended with (None when it completed)."""


def collect(client: Client, **arguments: Any) -> Outcome:
    """Iterate a stream to its end with ``with to_iterator(...)``; never raises."""
    events: list[ChatEvent] = []
    try:
        with to_iterator(client.chat_stream(model="m", messages=MESSAGES, **arguments)) as it:
            for event in it:
                events.append(event)
    except Exception as error:  # the test inspects it
        return events, error
    return events, None


async def acollect(client: AsyncClient, **arguments: Any) -> Outcome:
    """The async twin of :func:`collect`, with ``async with to_async_iterator(...)``."""
    events: list[ChatEvent] = []
    try:
        stream = client.chat_stream(model="m", messages=MESSAGES, **arguments)
        async with to_async_iterator(stream) as it:
            async for event in it:
                events.append(event)
    except Exception as error:  # the test inspects it
        return events, error
    return events, None


_ASYNC_MODES: dict[str, AsyncTransportName] = {f"async-{name}": name for name in ASYNC_TRANSPORTS}

ASYNC_MODES = [pytest.param(mode, id=mode) for mode in _ASYNC_MODES]
"""``async for`` on an ``AsyncClient``, once over each asyncio transport."""

_SUBSCRIBE_MODES: dict[str, AsyncTransportName] = {
    f"async-subscribe-{name}": name for name in ASYNC_TRANSPORTS
}

MODES = [
    pytest.param("iterator", id="iterator"),
    pytest.param("observable", id="observable"),
    *ASYNC_MODES,
    *(pytest.param(mode, id=mode) for mode in _SUBSCRIBE_MODES),
]
"""The ways to consume a client stream: ``for`` on the caller's thread, ``subscribe`` (a
reader thread), ``async for`` on an ``AsyncClient`` over each asyncio transport
(``async-httpx``, ``async-native``, ``async-native-httptools``), and ``subscribe`` on the
loop over each (``async-subscribe-httpx``, ``async-subscribe-native``, ...: the native
transport then delivers each event from inside its socket callback, a path of its own).
Tests that consume the stream themselves treat the subscribe modes as their ``async for``
twins."""


def transport_of(mode: str) -> AsyncTransportName:
    """The asyncio transport an ``async-...`` mode runs over."""
    transport = _ASYNC_MODES.get(mode) or _SUBSCRIBE_MODES.get(mode)
    assert transport is not None, f"not an async mode: {mode!r}"
    return transport


def fast_backoff(client: Client | AsyncClient, max_retries: int = 2) -> None:
    """Keep the retry count but shrink the backoff, so retry tests stay fast."""
    client._config.retry = RetryPolicy(max_retries=max_retries, initial_delay=0.01, max_delay=0.02)


def run_stream(
    mode: str,
    base_url: str,
    *,
    arguments: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> Outcome:
    """One stream from a fresh client, consumed the ``mode`` way; never raises.

    ``options`` go to the client; ``arguments`` to ``chat_stream``; ``retry`` replaces the
    client's retry policy (to fix the jitter).
    """
    arguments = arguments or {}
    if mode in _SUBSCRIBE_MODES:
        return asyncio.run(_subscribe_on_loop(mode, base_url, arguments, retry, options))
    if mode in _ASYNC_MODES:

        async def main() -> Outcome:
            async with async_client(
                KEY, base_url=base_url, transport=transport_of(mode), **options
            ) as client:
                if retry is not None:
                    client._config.retry = retry
                return await acollect(client, **arguments)

        return asyncio.run(main())
    assert mode in ("iterator", "observable"), f"unknown mode: {mode!r}"
    with Client(KEY, base_url=base_url, **options) as client:
        if retry is not None:
            client._config.retry = retry
        if mode == "iterator":
            return collect(client, **arguments)
        collector: Collector[ChatEvent] = Collector()
        collector.subscribe(client.chat_stream(model="m", messages=MESSAGES, **arguments))
        collector.wait()
        assert collector.terminal_signals == 1
        return collector.items, collector.error


async def _subscribe_on_loop(
    mode: str,
    base_url: str,
    arguments: dict[str, Any],
    retry: RetryPolicy | None,
    options: dict[str, Any],
) -> Outcome:
    """Subscribe on the running loop and wait for the one terminal signal."""
    async with async_client(
        KEY, base_url=base_url, transport=transport_of(mode), **options
    ) as client:
        if retry is not None:
            client._config.retry = retry
        done = asyncio.Event()
        events: list[ChatEvent] = []
        failures: list[Exception] = []
        signals: list[str] = []

        def on_error(error: Exception) -> None:
            failures.append(error)
            signals.append("error")
            done.set()

        def on_completed() -> None:
            signals.append("completed")
            done.set()

        stream = client.chat_stream(model="m", messages=MESSAGES, **arguments)
        subscription = stream.subscribe(
            on_next=events.append, on_error=on_error, on_completed=on_completed
        )
        try:
            await done.wait()
            await asyncio.sleep(0)  # a second terminal signal would come now
        finally:
            subscription.dispose()
        assert len(signals) == 1, signals
        return events, failures[0] if failures else None


class _CountingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, owner: CountingTransport) -> None:
        self._inner = inner
        self._owner = owner

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        with self._owner.lock:
            self._owner.closes += 1
        self._inner.close()


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting requests sent and response bodies closed."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.lock = threading.Lock()
        self.requests = 0
        self.closes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests += 1
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _CountingStream(response.stream, self)
        return response


class _CountingAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, owner: CountingAsyncTransport) -> None:
        self._inner = inner
        self._owner = owner

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inner.__aiter__()

    async def aclose(self) -> None:
        self._owner.closes += 1
        await self._inner.aclose()


class CountingAsyncTransport(httpx.AsyncHTTPTransport):
    """The async twin of :class:`CountingTransport`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.requests = 0
        self.closes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountingAsyncStream(response.stream, self)
        return response


def open_sockets() -> int:
    """How many sockets this process holds open (client and loopback-server ends alike)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
    return count


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` passes (False)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


async def async_wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """:func:`wait_until` without blocking the running loop."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.005)
    return True
