"""`serve`: run `create_app` under uvicorn until Ctrl-C or SIGTERM (``streamkit serve``)."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from types import FrameType
from typing import TextIO

try:
    import uvicorn
except ImportError as error:  # say which extra brings it, not just what is missing
    raise ImportError(
        "streamkit serve needs uvicorn: pip install 'cohere-streamkit[web]'"
    ) from error

from streamkit._client import AsyncClient
from streamkit.web._app import create_app

__all__ = ["serve"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(
    client: AsyncClient,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str,
    stderr: TextIO = sys.stderr,
) -> None:
    """Serve the chat app over ``client`` until Ctrl-C or SIGTERM, then close the client.

    uvicorn stops gracefully on either signal (open streams are cancelled, and with them their
    upstream requests) and then re-raises it; the handlers installed here receive that second
    signal, so the process ends with status 0 rather than a traceback or a kill.
    """
    try:
        listener = _listen(host, port)
    except OSError as error:
        asyncio.run(client.aclose())
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {reason}") from None
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(client, model=model),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
        )
    )

    def stop(_signal: int, _frame: FrameType | None) -> None:
        server.should_exit = True  # before uvicorn's own handlers, or the signal it re-raises

    previous = {number: signal.signal(number, stop) for number in _STOP_SIGNALS}
    try:
        asyncio.run(_run(server, listener, client, stderr))
    finally:
        listener.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket: bound here, a taken port is a one-line error, not uvicorn's exit."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


async def _run(
    server: uvicorn.Server, listener: socket.socket, client: AsyncClient, stderr: TextIO
) -> None:
    async with client:
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            host, port = server.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            print(f"streamkit: serving on http://{shown}:{port}/ (Ctrl-C stops)", file=stderr)
            stderr.flush()
        await task
