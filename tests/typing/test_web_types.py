"""Static type tests for streamkit.web, checked by mypy --strict (and trivially run by pytest)."""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette
from starlette.responses import StreamingResponse

from streamkit import AsyncClient, Client, from_events
from streamkit.web import (
    UIMessageStreamEncoder,
    create_app,
    sse_response,
    ui_message_stream_response,
    ui_messages_to_cohere,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


def test_responses_take_any_chat_stream_and_are_streaming_responses() -> None:
    stream = from_events([])
    assert_type(ui_message_stream_response(stream), StreamingResponse)
    assert_type(sse_response(stream), StreamingResponse)


def accepts_client_streams(client: Client, aclient: AsyncClient) -> list[StreamingResponse]:
    """Type-checked only: both clients' streams go in as they are."""
    return [
        ui_message_stream_response(client.chat_stream(model="m", messages=[])),
        sse_response(aclient.chat_stream(model="m", messages=[])),
    ]


def test_the_encoder_and_converter_return_json_objects() -> None:
    encoder = UIMessageStreamEncoder()
    assert_type(encoder.finish(), list[dict[str, Any]])
    assert_type(ui_messages_to_cohere([]), list[dict[str, Any]])


def builds_the_chat_app(client: AsyncClient) -> Starlette:
    app = create_app(client, model="m", cors_origins=["http://localhost:3000"])
    assert_type(app, Starlette)
    assert_type(client.is_offline, bool)
    return app
