"""Serve Cohere chat streams to browsers: the Vercel AI SDK's UI message stream, plain SSE.

Needs the ``web`` extra (``pip install 'cohere-streamkit[web]'``: Starlette and uvicorn);
``import streamkit`` alone never imports them. ::

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route
    from streamkit import AsyncClient
    from streamkit.web import ui_message_stream_response, ui_messages_to_cohere

    client = AsyncClient.offline()

    async def chat(request: Request):
        body = await request.json()
        messages = ui_messages_to_cohere(body)
        return ui_message_stream_response(
            client.chat_stream(model="command-a-03-2025", messages=messages)
        )

    app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])

`create_app(client)` is a whole chat app (a page and ``/api/chat``), what ``streamkit
serve`` runs. `UIMessageStreamEncoder` is the pure part (events in, chunks out) for other
frameworks.
"""

from streamkit.web._app import DEFAULT_MAX_BODY_SIZE, create_app
from streamkit.web._encode import (
    UI_MESSAGE_STREAM_HEADERS,
    UIMessageStreamEncoder,
    encode_sse_data,
    encode_sse_event,
    error_text,
)
from streamkit.web._messages import ui_messages_to_cohere
from streamkit.web._responses import DEFAULT_KEEP_ALIVE, sse_response, ui_message_stream_response

__all__ = [
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_MAX_BODY_SIZE",
    "UI_MESSAGE_STREAM_HEADERS",
    "UIMessageStreamEncoder",
    "create_app",
    "encode_sse_data",
    "encode_sse_event",
    "error_text",
    "sse_response",
    "ui_message_stream_response",
    "ui_messages_to_cohere",
]
