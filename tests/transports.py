"""The asyncio transports every ``AsyncClient`` test runs over, and how to spot a leak on each.

A test runs once per asyncio transport by taking the ``async_transport`` fixture
(``tests/conftest.py``) or, in ``tests/reliability``, one of the ``async-httpx`` /
``async-native`` / ``async-native-httptools`` modes; the client is made by
:func:`async_client` with ``transport=`` that name, nothing patched (``native-httptools``
is the native transport on llhttp: ``NativeTransport(parser="httptools")``, which the
client then owns as it owns a transport it made from a name).

httpx's pool can be capped at one connection, which turns a leaked connection into a
``PoolTimeout`` on the next request. The native transport's pool has no cap, so
:class:`LedgerNativeTransport` keeps a ledger of the connections it opens instead: a
connection neither closed nor idle in the pool is in use, and with ``one_at_a_time``
opening a second one while the first is in use fails the test at once.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from streamkit import AsyncClient, NativeTransport
from streamkit._http11 import ParserName
from streamkit._native import Origin, ReaderFactory, _Connection, _Pool
from streamkit._transport import DEFAULT_TIMEOUT

__all__ = [
    "ASYNC_TRANSPORTS",
    "AsyncTransportName",
    "LedgerNativeTransport",
    "async_client",
    "connections_in_use",
    "parser_of",
    "pooled_connections",
]

AsyncTransportName = Literal["httpx", "native", "native-httptools"]
"""An asyncio transport's name: what ``AsyncClient(transport=...)`` accepts, and
``native-httptools`` (the native transport with ``parser="httptools"``)."""

ASYNC_TRANSPORTS: tuple[AsyncTransportName, ...] = ("httpx", "native", "native-httptools")
"""Every asyncio transport, in the order their test ids appear."""


def parser_of(name: AsyncTransportName) -> ParserName:
    """The response parser of a native transport's name."""
    assert name != "httpx", "httpx has no native parser"
    return "httptools" if name == "native-httptools" else "h11"


def async_client(*args: Any, transport: AsyncTransportName, **options: Any) -> AsyncClient:
    """``AsyncClient(*args, transport=transport, **options)``, for any of the names above.

    For ``native-httptools`` the client gets a ``NativeTransport(parser="httptools")``
    (with the ``timeout`` option, if given) and closes it on ``aclose()``, as it does a
    transport it made from a name.
    """
    if transport != "native-httptools":
        return AsyncClient(*args, transport=transport, **options)
    native = NativeTransport(parser="httptools", timeout=options.pop("timeout", DEFAULT_TIMEOUT))
    client = AsyncClient(*args, transport=native, **options)
    client._owns_transport = True
    return client


class _LedgerPool(_Pool):
    """The native pool, recording every connection it opens."""

    def __init__(
        self, max_idle: int, expiry: float, reader: ReaderFactory, *, one_at_a_time: bool
    ) -> None:
        super().__init__(max_idle, expiry, reader)
        self.one_at_a_time = one_at_a_time
        self.connects = 0
        self.opened: list[_Connection] = []

    def idle(self) -> list[_Connection]:
        return [connection for idle in self._idle.values() for _, connection in idle]

    def in_use(self) -> list[_Connection]:
        idle = {id(connection) for connection in self.idle()}
        return [c for c in self.opened if not c.closed and id(c) not in idle]

    async def connect(self, origin: Origin, timeout: float | None) -> _Connection:
        self.connects += 1
        if self.one_at_a_time:
            # httpx's pool of one would time out here: the one connection was never
            # handed back (an idle one would have been checked out instead of this).
            assert self.in_use() == [], "a connection was neither closed nor returned"
        connection = await super().connect(origin, timeout)
        self.opened.append(connection)
        return connection


class LedgerNativeTransport(NativeTransport):
    """The native transport with a ledger of its connections (test-only).

    Args:
        one_at_a_time: Fail a connect while another connection is in use: the native
            equivalent of httpx's pool of one.
        timeout: As for :class:`~streamkit.NativeTransport`; five seconds, as the httpx
            pool of one has, so that a hung test fails soon.
        max_idle_per_origin: As for :class:`~streamkit.NativeTransport`.
        keepalive_expiry: As for :class:`~streamkit.NativeTransport`.
        parser: As for :class:`~streamkit.NativeTransport`.
    """

    def __init__(
        self,
        *,
        one_at_a_time: bool = False,
        timeout: float | httpx.Timeout | None = 5.0,
        max_idle_per_origin: int = 20,
        keepalive_expiry: float = 5.0,
        parser: ParserName = "h11",
    ) -> None:
        super().__init__(
            timeout=timeout,
            max_idle_per_origin=max_idle_per_origin,
            keepalive_expiry=keepalive_expiry,
            parser=parser,
        )
        self.ledger = _LedgerPool(
            max_idle_per_origin, keepalive_expiry, self._reader, one_at_a_time=one_at_a_time
        )
        self._pool = self.ledger

    @property
    def connects(self) -> int:
        """How many connections were opened or tried (failed connects count too)."""
        return self.ledger.connects


def pooled_connections(client: AsyncClient) -> int:
    """How many connections the client's transport holds open, busy or idle."""
    transport: Any = client.transport
    if isinstance(transport, LedgerNativeTransport):
        return len(transport.ledger.idle()) + len(transport.ledger.in_use())
    assert not isinstance(transport, NativeTransport), "use a LedgerNativeTransport"
    return len(transport.http._transport._pool.connections)


def connections_in_use(client: AsyncClient) -> int:
    """How many connections the client's transport holds open and busy (not idle)."""
    transport: Any = client.transport
    if isinstance(transport, LedgerNativeTransport):
        return len(transport.ledger.in_use())
    assert not isinstance(transport, NativeTransport), "use a LedgerNativeTransport"
    return sum(1 for c in transport.http._transport._pool.connections if not c.is_idle())
