"""`create_app` over a client made on the server's own loop, for tests that serve it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from streamkit import AsyncClient
from streamkit.web import create_app


class OwnedClientApp:
    """`create_app` over a client made on the server's own loop at startup, closed at shutdown."""

    def __init__(self, make_client: Callable[[], AsyncClient], **options: Any) -> None:
        self._make_client = make_client
        self._options = options
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        client = self._make_client()
        self._app = create_app(client, **self._options)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await client.aclose()
        await send({"type": "lifespan.shutdown.complete"})
