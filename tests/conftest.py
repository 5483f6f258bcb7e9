from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamkit import OfflineServer
from tests.scripted_server import ScriptedServer
from tests.transports import ASYNC_TRANSPORTS, AsyncTransportName


@pytest.fixture(scope="session")
def offline() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture(params=ASYNC_TRANSPORTS)
def async_transport(request: pytest.FixtureRequest) -> AsyncTransportName:
    """An asyncio transport's name: a test that takes it runs once over each.

    The ids are ``httpx``, ``native`` and ``native-httptools``; pass it on as
    ``tests.transports.async_client(..., transport=async_transport)``.
    """
    name: AsyncTransportName = request.param
    return name
