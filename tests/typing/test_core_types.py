"""Static type tests for the core API, checked by mypy --strict (and trivially run by pytest)."""

from __future__ import annotations

import sys

from reactivex import Observable

from streamkit import (
    AsyncChatStream,
    AsyncClient,
    AsyncStreamIterator,
    ChatEvent,
    ChatResponse,
    ChatStream,
    Client,
    StreamIterator,
    accumulate,
    from_sse_bytes,
    to_async_iterator,
    to_iterator,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


def test_client_streams_are_observables_of_chat_events() -> None:
    client = Client("k", base_url="http://127.0.0.1:9")
    stream = client.chat_stream(model="m", messages=[{"role": "user", "content": "hi"}])
    assert_type(stream, ChatStream)
    observable: Observable[ChatEvent] = stream
    assert_type(to_iterator(stream), StreamIterator[ChatEvent])
    client.close()
    assert observable is stream


def test_async_client_streams_are_observables_of_chat_events() -> None:
    client = AsyncClient("k", base_url="http://127.0.0.1:9")
    stream = client.chat_stream(model="m", messages=[{"role": "user", "content": "hi"}])
    assert_type(stream, AsyncChatStream)
    observable: Observable[ChatEvent] = stream
    assert observable is stream


def test_adapters_keep_item_types() -> None:
    texts: Observable[str] = Observable()
    assert_type(to_iterator(texts), StreamIterator[str])
    assert_type(to_async_iterator(from_sse_bytes(b"")), AsyncStreamIterator[ChatEvent])
    assert_type(from_sse_bytes(b""), ChatStream)


def test_accumulate_returns_a_chat_response() -> None:
    events = from_sse_bytes(b'data: {"type":"message-start","id":"m"}\n\n')
    snapshot = None
    for event in to_iterator(events):
        snapshot = accumulate(snapshot, event)
        assert_type(snapshot, ChatResponse)
        break
    assert snapshot is not None and snapshot.id == "m"
