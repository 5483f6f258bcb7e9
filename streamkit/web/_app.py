"""`create_app`: a small Starlette chat app, the page of ``streamkit serve`` and its API.

Routes:

* ``GET /`` the page (``static/index.html``, with ``chat.css`` and ``chat.js`` under
  ``/static/``): vanilla HTML, CSS and JavaScript shipped in the package, no build step and
  no request to anywhere but this server.
* ``GET /api/info`` ``{"backend": "offline"|"cohere", "model": ..., "version": ...}``: what
  the page shows. Never the key, nor the base URL (which could carry a user and password).
* ``POST /api/chat`` what ``useChat``'s ``DefaultChatTransport`` sends (``{id, messages,
  trigger}``), answered with `ui_message_stream_response`. A body over ``max_body_size``
  bytes is a 413, malformed JSON or an invalid ``UIMessage`` list a 400; each error is one
  line of JSON, ``{"error": "..."}``.

No CORS headers are sent unless ``cors_origins`` names the origins that may call the API.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from importlib import resources

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as error:  # say which extra brings it, not just what is missing
    raise ImportError(
        "streamkit.web needs Starlette: pip install 'cohere-streamkit[web]'"
    ) from error

from streamkit._client import AsyncClient
from streamkit._version import __version__
from streamkit.errors import InvalidUIMessageError
from streamkit.web._messages import ui_messages_to_cohere
from streamkit.web._responses import ui_message_stream_response

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app"]

DEFAULT_MAX_BODY_SIZE = 1 << 20
"""Bytes a ``POST /api/chat`` body may have (1 MiB): a long conversation fits, a flood not."""

_DEFAULT_MODEL = "command-a-03-2025"

# The page's files and their content types; nothing else under static/ is served.
_STATIC = {
    "chat.css": "text/css; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
    # chat.js's SSE parser: the npm package eventsource-parser's ES module build, vendored
    # verbatim (MIT, its licence beside it; tests/web/test_vendored.py checks the bytes).
    "eventsource-parser.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# The page may load only what this server sends: no CDN, no inline script, no framing.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class _Refused(enum.Enum):
    TOO_LARGE = "too large"


_TOO_LARGE = _Refused.TOO_LARGE
"""What `_body` returns for a body over the limit (a 413)."""


def create_app(
    client: AsyncClient,
    *,
    model: str = _DEFAULT_MODEL,
    backend: str | None = None,
    cors_origins: Sequence[str] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> Starlette:
    """A Starlette app serving a chat page and its ``/api/chat`` over ``client``.

    The app does not own the client: close it after the app stops. Mount it in a larger app
    or serve it with uvicorn (``streamkit serve`` does both the client and the serving).

    Args:
        client: The `AsyncClient` every chat goes through (`AsyncClient.offline()` for the
            built-in backend).
        model: The Cohere model to ask.
        backend: What the page calls the backend; by default ``"offline"`` for a client made
            by `AsyncClient.offline()` and ``"cohere"`` otherwise.
        cors_origins: Origins allowed to call the API from other pages; none by default.
        max_body_size: Bytes a chat request's body may have before it is refused with 413.

    Returns:
        The app.

    Raises:
        ValueError: ``max_body_size`` is not a positive number of bytes.
    """
    if max_body_size <= 0:
        raise ValueError(f"max_body_size must be > 0 bytes, got {max_body_size!r}")
    label = backend or ("offline" if client.is_offline else "cohere")
    info = {"backend": label, "model": model, "version": __version__}

    async def page(_request: Request) -> Response:
        return Response(_read("index.html"), media_type="text/html", headers=_PAGE_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return _error(404, f"no such file: {name}")
        return Response(_read(name), media_type=_STATIC[name], headers=_PAGE_HEADERS)

    async def api_info(_request: Request) -> Response:
        return JSONResponse(info)

    async def chat(request: Request) -> Response:
        raw = await _body(request, max_body_size)
        if raw is _TOO_LARGE:
            return _error(413, f"the request body is over {max_body_size} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            return _error(400, f"the request body is not JSON: {error}")
        try:
            messages = ui_messages_to_cohere(body)
        except InvalidUIMessageError as error:
            return _error(400, str(error))
        return ui_message_stream_response(client.chat_stream(model=model, messages=messages))

    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["content-type"],
            )
        )
    return Starlette(
        routes=[
            Route("/", page),
            Route("/static/{name}", static),
            Route("/api/info", api_info),
            Route("/api/chat", chat, methods=["POST"]),
        ],
        middleware=middleware,
    )


def _read(name: str) -> bytes:
    return resources.files("streamkit.web").joinpath("static").joinpath(name).read_bytes()


def _error(status: int, message: str) -> Response:
    # One line of JSON: what `DefaultChatTransport` shows as the error's message.
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, limit: int) -> bytes | _Refused:
    """The request's body, refused as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _TOO_LARGE
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return _TOO_LARGE
        parts.append(part)
    return b"".join(parts)
