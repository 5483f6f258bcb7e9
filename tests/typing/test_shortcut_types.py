"""Static types of the shortcuts a newcomer meets first, checked by mypy --strict."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Iterator

import pytest

from streamkit import AsyncClient, ChatEvent, ChatResponse, Client, ContentDeltaEvent, to_iterator

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_sync_shortcuts_are_typed_precisely() -> None:
    with Client.offline() as client:
        assert_type(client, Client)
        stream = client.chat_stream(model="m", messages=MESSAGES)
        assert_type(stream.text(), Iterator[str])
        pieces: list[str] = []
        reply = stream.final_message(on_text=pieces.append)
        assert_type(reply, ChatResponse)
        assert_type(reply.text, str)
        assert reply.text == "".join(pieces)
        assert_type(client.chat(model="m", messages=MESSAGES), ChatResponse)


def test_async_shortcuts_are_typed_precisely() -> None:
    async def main() -> str:
        async with AsyncClient.offline() as client:
            assert_type(client, AsyncClient)
            stream = client.chat_stream(model="m", messages=MESSAGES)
            assert_type(stream.text(), AsyncGenerator[str, None])
            reply = await stream.final_message()
            assert_type(reply, ChatResponse)
            assert_type(await client.chat(model="m", messages=MESSAGES), ChatResponse)
            return reply.text

    assert asyncio.run(main())


def test_a_typo_in_chat_is_a_type_error_for_mypy_and_at_run_time() -> None:
    with Client.offline() as client, pytest.raises(TypeError, match="temprature"):
        # mypy --strict warns about an unused ignore: this line must stay an error for it.
        client.chat(model="m", messages=MESSAGES, temprature=0.2)  # type: ignore[call-arg]


def test_match_on_the_event_class_narrows() -> None:
    with Client.offline() as client:
        for event in to_iterator(client.chat_stream(model="m", messages=MESSAGES)):
            assert_type(event, ChatEvent)
            match event:
                case ContentDeltaEvent():
                    assert_type(event, ContentDeltaEvent)
                    assert_type(event.text, str | None)
