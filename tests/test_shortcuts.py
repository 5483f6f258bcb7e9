"""The shortcuts: Client.offline(), stream.text(), stream.final_message(), chat()."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import httpx
import pytest

from streamkit import AsyncClient, Client
from streamkit import errors as E
from tests.reliability.test_cancellation import stalled
from tests.scripted_server import Headers, ScriptedServer, sse_events
from tests.test_client import KEY, MESSAGES, sse_ok, text_stream


def test_offline_clients_run_their_backend_for_their_lifetime() -> None:
    client = Client.offline()
    reply = client.chat(model="m", messages=MESSAGES)
    assert reply.finish_reason == "COMPLETE" and reply.text
    base_url = client.base_url
    client.close()
    with pytest.raises(httpx.ConnectError):
        httpx.post(base_url + "/v2/chat", json={}, timeout=2)

    async def main() -> str:
        async with AsyncClient.offline(transport="native") as aclient:
            text = "".join(
                [piece async for piece in aclient.chat_stream(model="m", messages=MESSAGES).text()]
            )
            url = aclient.base_url
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as http:
                await http.post(url + "/v2/chat", json={}, timeout=2)
        return text

    assert asyncio.run(main()) == reply.text


def test_the_missing_key_error_names_the_offline_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    with pytest.raises(E.MissingAPIKeyError, match=r"Client\.offline\(\)"):
        Client()


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9", "ftp://example.com", "http://", "https://h/?q=1", "not a url"]
)
def test_a_bad_base_url_is_refused_when_the_client_is_built(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        Client("k", base_url=url)
    with pytest.raises(ValueError, match="base_url"):
        AsyncClient("k", base_url=url)


def test_text_yields_the_reply_text_and_final_message_keeps_it() -> None:
    with Client.offline() as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        text = "".join(stream.text())
        pieces: list[str] = []
        reply = stream.final_message(on_text=pieces.append)  # a second request
    assert text == reply.text == "".join(pieces) and len(pieces) > 3


def test_leaving_text_early_closes_the_request(scripted: ScriptedServer) -> None:
    scripted.enqueue(stalled())
    with Client(KEY, base_url=scripted.base_url) as client:
        for _ in client.chat_stream(model="m", messages=MESSAGES).text():
            break
    assert scripted.wait_for_request(1).disconnected.wait(5)


def test_shortcuts_raise_the_typed_error_with_the_partial_message(
    scripted: ScriptedServer,
) -> None:
    cut = [Headers(), *sse_events(text_stream("partial", " text")[:3], done=False)]
    scripted.enqueue(cut, cut, cut, cut)
    with Client(KEY, base_url=scripted.base_url, max_retries=0) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        seen: list[str] = []
        with pytest.raises(E.StreamTruncatedError) as caught:
            seen.extend(stream.text())
        assert seen == ["partial"]
        with pytest.raises(E.StreamTruncatedError) as again:
            stream.final_message()
    for error in (caught.value, again.value):
        assert error.partial_message is not None and error.partial_message.text == "partial"

    async def main() -> None:
        async with AsyncClient(KEY, base_url=scripted.base_url, max_retries=0) as client:
            stream = client.chat_stream(model="m", messages=MESSAGES)
            with pytest.raises(E.StreamTruncatedError):
                await stream.final_message()
            with pytest.raises(E.StreamTruncatedError):
                async with contextlib.aclosing(stream.text()) as texts:
                    async for _ in texts:
                        pass

    asyncio.run(main())


def test_async_final_message_live_then_final(scripted: ScriptedServer) -> None:
    scripted.enqueue(sse_ok(text_stream("one", " two")))

    async def main() -> tuple[str | None, list[str]]:
        pieces: list[str] = []
        async with AsyncClient(KEY, base_url=scripted.base_url) as client:
            reply = await client.chat_stream(model="m", messages=MESSAGES).final_message(
                on_text=pieces.append
            )
        return reply.text, pieces

    assert asyncio.run(main()) == ("one two", ["one", " two"])
    assert len(scripted.requests) == 1


@pytest.mark.parametrize("transport", ["httpx", "native"])
def test_offline_clients_ignore_proxy_variables(
    monkeypatch: pytest.MonkeyPatch, transport: Literal["httpx", "native"]
) -> None:
    # The backend is on loopback: a corporate proxy setting must not break the examples.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Client.offline() as client:
        assert client.chat(model="m", messages=MESSAGES).finish_reason == "COMPLETE"

    async def main() -> str | None:
        async with AsyncClient.offline(transport=transport) as aclient:
            reply = await aclient.chat_stream(model="m", messages=MESSAGES).final_message()
        return reply.finish_reason

    assert asyncio.run(main()) == "COMPLETE"


def test_our_own_deadline_has_no_misleading_cause() -> None:
    with Client.offline(pacing=0.05, deadline=0.3) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES)
        with pytest.raises(E.StreamTimeoutError) as caught:
            stream.final_message()
    assert caught.value.reason == "deadline" and caught.value.__cause__ is None
