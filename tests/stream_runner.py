"""One stream (or a few, on one client) on each of the four transports, bounded in time.

``httpx-sync`` is :class:`~streamkit.Client`, ``httpx-async`` :class:`~streamkit.AsyncClient`
(its default transport), ``native`` ``AsyncClient(transport="native")`` (h11) and
``native-httptools`` the native transport on llhttp
(``AsyncClient(transport=NativeTransport(parser="httptools"))``). Each run happens
on a thread of its own, so that a transport that hangs, even one that blocks its event
loop, is reported as :class:`Hang` instead of stalling the test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from streamkit import AsyncClient, Client, NativeTransport, to_async_iterator, to_iterator
from streamkit._request import RequestOptions

__all__ = [
    "BOUND",
    "KEY",
    "MESSAGES",
    "NATIVE",
    "TRANSPORTS",
    "Hang",
    "Outcome",
    "Transport",
    "run_streams",
    "transport_params",
]

Transport = Literal["httpx-async", "httpx-sync", "native", "native-httptools"]
TRANSPORTS: tuple[Transport, ...] = ("httpx-async", "httpx-sync", "native", "native-httptools")
NATIVE: tuple[Transport, ...] = ("native", "native-httptools")
"""The native transport, over each of its response parsers."""

KEY = "co-transports-key-0123456789"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

BOUND = 4.0
"""Seconds a run may take by default; longer is a hang."""


def transport_params() -> list[Any]:
    return [pytest.param(t, id=t) for t in TRANSPORTS]


class Hang(Exception):
    """The run did not end in time (deliberately not a streamkit error: a failure)."""


@dataclass(frozen=True)
class Outcome:
    """What one stream delivered and how it ended."""

    events: tuple[str, ...]
    error: BaseException | None
    seconds: float = 0.0

    @property
    def kind(self) -> type[BaseException] | None:
        return type(self.error) if self.error is not None else None

    def key(self) -> tuple[tuple[str, ...], type[BaseException] | None]:
        """What two transports must agree on: the event types and the error's class."""
        return self.events, self.kind

    def __str__(self) -> str:
        end = "completed" if self.error is None else f"{type(self.error).__name__}: {self.error}"
        return f"{len(self.events)} events {list(self.events)}, then {end}"


class _Run:
    """The state a run's thread shares with the test's thread."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.events: list[str] = []
        self.started = time.monotonic()
        self.task: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None

    def ended(self, error: BaseException | None) -> None:
        seconds = time.monotonic() - self.started
        self.outcomes.append(Outcome(tuple(self.events), error, seconds))
        self.events = []
        self.started = time.monotonic()


def run_streams(
    transport: Transport,
    base_url: str,
    *,
    count: int = 1,
    between: Callable[[], None] | None = None,
    request_options: RequestOptions | None = None,
    bound: float = BOUND,
    on_hang: Callable[[], None] | None = None,
    prepare: Callable[[Client | AsyncClient], None] | None = None,
    **client_options: Any,
) -> list[Outcome]:
    """``count`` streams, one after the other, on one client made with ``client_options``.

    ``prepare`` gets the client once it is made; ``between`` runs before each stream but
    the first (off the event loop). If making the client fails, the only outcome is that
    error. A run past ``bound`` seconds is stopped
    (its task cancelled, then ``on_hang`` called to cut its connections) and its last
    outcome is a :class:`Hang`.
    """
    state = _Run()
    options: dict[str, Any] = {"max_retries": 0, **client_options}

    def work() -> None:
        try:
            if transport == "httpx-sync":
                _sync(state, base_url, count, between, prepare, request_options, options)
            else:

                async def main() -> None:
                    task = asyncio.ensure_future(
                        _async(
                            state,
                            base_url,
                            count,
                            between,
                            prepare,
                            request_options,
                            options,
                            transport,
                        )
                    )
                    state.task = (asyncio.get_running_loop(), task)
                    await task

                asyncio.run(main())
        except BaseException as error:  # making the client failed: that is the outcome
            state.ended(error)

    thread = threading.Thread(target=work, name=f"stream-{transport}", daemon=True)
    thread.start()
    thread.join(bound)
    if thread.is_alive():
        events = tuple(state.events)
        if state.task is not None:
            loop, task = state.task
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        if on_hang is not None:
            on_hang()
        thread.join(10)
        return [*state.outcomes, Outcome(events, Hang(f"no end after {bound} s"), bound)]
    return state.outcomes


def _sync(
    state: _Run,
    base_url: str,
    count: int,
    between: Callable[[], None] | None,
    prepare: Callable[[Client | AsyncClient], None] | None,
    request_options: RequestOptions | None,
    options: dict[str, Any],
) -> None:
    with Client(base_url=base_url, **_keyed(options)) as client:
        if prepare is not None:
            prepare(client)
        for n in range(count):
            if n and between is not None:
                between()
            state.started = time.monotonic()
            try:
                stream = client.chat_stream(
                    model="command-a-03-2025", messages=MESSAGES, request_options=request_options
                )
                with to_iterator(stream) as iterator:
                    for event in iterator:
                        state.events.append(event.type)
            except Exception as error:  # the outcome
                state.ended(error)
            else:
                state.ended(None)


async def _async(
    state: _Run,
    base_url: str,
    count: int,
    between: Callable[[], None] | None,
    prepare: Callable[[Client | AsyncClient], None] | None,
    request_options: RequestOptions | None,
    options: dict[str, Any],
    transport: Transport,
) -> None:
    if transport == "native-httptools":
        # The timeout goes to the transport: a client refuses one beside a transport object.
        timeouts = {"timeout": options.pop("timeout")} if "timeout" in options else {}
        native = NativeTransport(parser="httptools", **timeouts)
        client = AsyncClient(base_url=base_url, transport=native, **_keyed(options))
    else:
        name: Literal["httpx", "native"] = "native" if transport == "native" else "httpx"
        client = AsyncClient(base_url=base_url, transport=name, **_keyed(options))
    try:
        await _consume(state, client, count, between, prepare, request_options)
    finally:
        await client.aclose()
        if transport == "native-httptools":
            await client.transport.aclose()  # a transport given to a client stays its caller's


async def _consume(
    state: _Run,
    client: AsyncClient,
    count: int,
    between: Callable[[], None] | None,
    prepare: Callable[[Client | AsyncClient], None] | None,
    request_options: RequestOptions | None,
) -> None:
    if prepare is not None:
        prepare(client)
    for n in range(count):
        if n and between is not None:
            await asyncio.to_thread(between)
        state.started = time.monotonic()
        try:
            stream = client.chat_stream(
                model="command-a-03-2025", messages=MESSAGES, request_options=request_options
            )
            async with to_async_iterator(stream) as iterator:
                async for event in iterator:
                    state.events.append(event.type)
        except Exception as error:  # the outcome
            state.ended(error)
        else:
            state.ended(None)


def _keyed(options: dict[str, Any]) -> dict[str, Any]:
    """The client options, with the API key under ``api_key`` (KEY unless given)."""
    return {"api_key": KEY, **options}
