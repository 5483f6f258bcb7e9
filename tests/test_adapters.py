"""to_iterator / to_async_iterator and the replay sources."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.disposable import Disposable

from streamkit import (
    AsyncClient,
    ChatEvent,
    Client,
    ContentDeltaEvent,
    OfflineServer,
    UnknownEvent,
    event_to_dict,
    from_events,
    from_sdk_stream,
    from_sse_bytes,
    from_sse_file,
    to_async_iterator,
    to_iterator,
)
from streamkit import errors as E
from tests.test_client import KEY, MESSAGES, end, text_stream


def text_pieces(events: reactivex.Observable[ChatEvent]) -> reactivex.Observable[str]:
    return events.pipe(
        ops.filter(lambda e: isinstance(e, ContentDeltaEvent)),
        ops.map(lambda e: e.text if isinstance(e, ContentDeltaEvent) and e.text else ""),
    )


def body_of(events: list[dict[str, Any]], *, done: bool = True) -> bytes:
    raw = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    return raw + (b"data: [DONE]\n\n" if done else b"")


def test_from_sse_bytes_replays_the_same_events_whatever_the_chunking() -> None:
    events = text_stream("Hel", "lo ", "wörld ☕")
    body = body_of(events)
    whole = list(to_iterator(from_sse_bytes(body)))
    one_by_one = list(to_iterator(from_sse_bytes([body[i : i + 1] for i in range(len(body))])))
    assert whole == one_by_one
    assert [event_to_dict(e) for e in whole] == events


def test_from_sse_bytes_ignores_everything_after_done() -> None:
    body = body_of(text_stream("a")) + b"event: content-delta\ndata: {not json\n\n"
    assert list(to_iterator(from_sse_bytes(body)))[-1].type == "message-end"


def test_from_sse_bytes_raises_the_same_errors_as_a_live_stream() -> None:
    with pytest.raises(E.StreamTruncatedError) as caught:
        list(to_iterator(from_sse_bytes(body_of(text_stream("cut")[:3], done=False))))
    assert caught.value.partial_message is not None
    assert caught.value.partial_message.text == "cut"


def test_from_sse_file(tmp_path: Path) -> None:
    path = tmp_path / "reply.sse"
    path.write_bytes(body_of(text_stream("from", " a file")))
    stream = from_sse_file(path)
    first = list(to_iterator(stream))
    assert list(to_iterator(stream)) == first  # cold: each subscription rereads the file
    assert "".join(e.text or "" for e in first if isinstance(e, ContentDeltaEvent)) == "from a file"


def test_from_events_accepts_dicts_and_typed_events() -> None:
    events = text_stream("x")
    typed = list(to_iterator(from_events(events)))
    assert list(to_iterator(from_events(typed))) == typed
    assert isinstance(list(to_iterator(from_events([{"type": "new-thing"}])))[0], UnknownEvent)


def test_replay_sources_are_synchronous_observables() -> None:
    seen: list[str] = []
    from_events(text_stream("x")).subscribe(lambda e: seen.append(e.type))
    assert seen[0] == "message-start" and seen[-1] == "message-end"


def test_from_sdk_stream_converts_the_official_sdks_events(offline: OfflineServer) -> None:
    cohere = pytest.importorskip("cohere")
    sdk = cohere.ClientV2(api_key=KEY, base_url=offline.base_url)
    sdk_events = list(sdk.chat_stream(model="command-a-03-2025", messages=MESSAGES))
    ours = list(to_iterator(from_sdk_stream(sdk_events)))
    with Client(KEY, base_url=offline.base_url) as client:
        direct = list(to_iterator(client.chat_stream(model="command-a-03-2025", messages=MESSAGES)))
    assert ours == direct


# ----------------------------------------------------------------------------- to_iterator bridge


def test_to_iterator_over_a_pipeline() -> None:
    stream = text_pieces(from_events(text_stream("a", "b", "c")))
    assert list(to_iterator(stream)) == ["a", "b", "c"]


def test_to_iterator_raises_the_streams_error_after_its_items() -> None:
    boom = ValueError("boom")
    stream: reactivex.Observable[int] = reactivex.concat(reactivex.of(1, 2), reactivex.throw(boom))
    got: list[int] = []
    with pytest.raises(ValueError) as caught:
        for item in to_iterator(stream):
            got.append(item)
    assert got == [1, 2] and caught.value is boom


def test_to_iterator_bridge_blocks_a_fast_producer_instead_of_buffering_everything() -> None:
    produced: list[int] = []

    def produce(observer: Any, _: Any) -> Any:
        for i in range(1000):
            produced.append(i)
            observer.on_next(i)
        observer.on_completed()

    iterator = to_iterator(reactivex.create(produce), buffer=8)
    assert next(iterator) == 0
    # The producer thread is now held back by the bounded buffer.
    for _ in range(100):
        if len(produced) >= 10:
            break
        threading.Event().wait(0.01)
    assert len(produced) <= 8 + 2
    assert list(iterator) == list(range(1, 1000))


def test_closing_the_bridge_disposes_the_subscription() -> None:
    disposed = threading.Event()

    def one_then_silence(observer: Any, _: Any) -> Any:
        observer.on_next(1)
        return Disposable(disposed.set)

    iterator = to_iterator(reactivex.create(one_then_silence))
    assert next(iterator) == 1
    assert not disposed.is_set()
    iterator.close()
    assert disposed.wait(5)


def test_an_abandoned_iterator_is_closed_when_collected(offline: OfflineServer) -> None:
    with Client(KEY, base_url=offline.base_url) as client:
        iterator = to_iterator(client.chat_stream(model="m", messages=MESSAGES))
        next(iterator)
        del iterator
        gc.collect()
        # The pool still works (a leaked response would hold its connection).
        assert list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))


# ----------------------------------------------------------------------------- to_async_iterator


def test_to_async_iterator_over_a_sync_pipeline_and_an_async_client(
    offline: OfflineServer,
) -> None:
    async def main() -> tuple[list[str], list[ChatEvent]]:
        texts: list[str] = []
        stream = text_pieces(from_events(text_stream("a", "b")))
        async with to_async_iterator(stream) as items:
            async for text in items:
                texts.append(text)
        async with AsyncClient(KEY, base_url=offline.base_url) as client:
            chat = client.chat_stream(model="m", messages=MESSAGES)
            events = [e async for e in to_async_iterator(chat)]
        return texts, events

    texts, events = asyncio.run(main())
    assert texts == ["a", "b"]
    assert events[-1].type == "message-end"


def test_to_async_iterator_over_a_threaded_client_stream(offline: OfflineServer) -> None:
    async def main() -> list[ChatEvent]:
        with Client(KEY, base_url=offline.base_url) as client:
            async with to_async_iterator(client.chat_stream(model="m", messages=MESSAGES)) as it:
                return [e async for e in it]

    assert asyncio.run(main())[-1].type == "message-end"


def test_to_async_iterator_raises_the_error() -> None:
    async def main() -> list[ChatEvent]:
        got: list[ChatEvent] = []
        async with to_async_iterator(from_events([*text_stream("x")[:2], end()])) as it:
            async for event in it:
                got.append(event)
        return got

    types = [e.type for e in asyncio.run(main())]
    assert types == ["message-start", "content-start", "message-end"]
