from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamkit import OfflineServer
from tests.scripted_server import ScriptedServer


@pytest.fixture(scope="session")
def offline() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server
