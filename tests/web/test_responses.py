from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import reactivex
from reactivex import operators as ops
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from streamkit import (
    AsyncClient,
    ChatEvent,
    Client,
    OfflineServer,
    from_events,
    from_sse_bytes,
    from_sse_file,
)
from streamkit.web import sse_response, ui_message_stream_response
from tests.scripted_server import ScriptedServer, json_response
from tests.web.assemble import fold, summary_of_chunks, summary_of_message
from tests.web.test_encode import FIXTURES
from tests.web.uvicorn_server import serve

MODEL = "command-a-03-2025"
QUESTION = "Please tell me, at great length, about " + " and ".join(
    f"the history of city number {n}" for n in range(40)
)


def ui_chunks(body: bytes) -> list[dict[str, Any]]:
    frames = body.decode().split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""], frames[-3:]
    return [
        json.loads(frame.removeprefix("data: "))
        for frame in frames[:-2]
        if not frame.startswith(":")
    ]


def fixture_app() -> Starlette:
    def stream(request: Request) -> reactivex.Observable[ChatEvent]:
        return from_sse_file(FIXTURES[0].parent / request.path_params["name"])

    async def ui(request: Request) -> Response:
        return ui_message_stream_response(stream(request), headers={"x-extra": "1"})

    async def sse(request: Request) -> Response:
        return sse_response(stream(request))

    return Starlette(
        routes=[
            Route("/ui/{name}", ui, methods=["POST"]),
            Route("/sse/{name}", sse, methods=["POST"]),
        ]
    )


def test_ui_message_stream_response_headers_and_body() -> None:
    with TestClient(fixture_app()) as client:
        response = client.post("/ui/thinking_text.sse")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-extra"] == "1"
    chunks = ui_chunks(response.content)
    response_message, _ = fold(from_sse_file(FIXTURES[0].parent / "thinking_text.sse"))
    summary = summary_of_chunks(chunks)
    assert summary.pop("errors") == []
    assert summary == summary_of_message(response_message)


def test_an_in_stream_error_ends_the_ui_stream_with_an_error_chunk() -> None:
    with TestClient(fixture_app()) as client:
        chunks = ui_chunks(client.post("/ui/error_mid_stream.sse").content)
    assert chunks[-1]["type"] == "error"
    assert [c["type"] for c in chunks].count("error") == 1


@pytest.mark.parametrize("name", ["tool_calls_two.sse", "citations_tools.sse"])
def test_sse_response_re_emits_coheres_events(name: str) -> None:
    with TestClient(fixture_app()) as client:
        body = client.post(f"/sse/{name}").content
    assert body.endswith(b"data: [DONE]\n\n")
    again = list(from_sse_bytes([body]).iterate())
    assert again == list(from_sse_file(FIXTURES[0].parent / name).iterate())


def test_sse_response_says_an_error_once_then_ends() -> None:
    with TestClient(fixture_app()) as client:
        body = client.post("/sse/error_mid_stream.sse").content.decode()
    assert body.count("event: error") + body.count('"finish_reason":"ERROR"') == 1
    assert body.endswith("data: [DONE]\n\n")


def test_sse_response_turns_a_failure_into_an_error_event() -> None:
    whole = (FIXTURES[0].parent / "text_plain.sse").read_bytes()
    truncated = whole[: whole.index(b"event: message-end")]

    def app(_request: Request) -> Response:
        return sse_response(from_sse_bytes([truncated]))

    with TestClient(Starlette(routes=[Route("/", app)])) as client:
        body = client.get("/").content.decode()
    frames = body.split("\n\n")
    assert frames[-3].startswith("event: error\ndata: ")
    error = json.loads(frames[-3].split("data: ", 1)[1])
    assert error["type"] == "error" and "message-end" in error["message"]


def slow_events() -> reactivex.Observable[ChatEvent]:
    events = list(from_sse_file(FIXTURES[0].parent / "text_plain.sse").iterate())
    return reactivex.from_iterable(events).pipe(ops.delay(0.35))


def test_keep_alive_comments_fill_silences() -> None:
    def app(_request: Request) -> Response:
        return ui_message_stream_response(slow_events(), keep_alive=0.1)

    with TestClient(Starlette(routes=[Route("/", app)])) as client:
        body = client.get("/").content
    assert body.startswith(b": keep-alive\n\n")
    assert ui_chunks(body)[-1]["type"] == "finish"


@pytest.mark.parametrize("respond", [ui_message_stream_response, sse_response])
def test_keep_alive_must_be_positive(respond: Any) -> None:
    with pytest.raises(ValueError, match="keep_alive"):
        respond(from_events([]), keep_alive=0)


@pytest.fixture
def upstream() -> Iterator[OfflineServer]:
    with OfflineServer(pacing=0.05) as server:
        yield server


def proxy_app(upstream: OfflineServer, kind: str) -> Starlette:
    clients: dict[str, Client | AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        with Client(api_key="test-key", base_url=upstream.base_url) as sync_client:
            async with (
                AsyncClient(api_key="test-key", base_url=upstream.base_url) as async_client,
                AsyncClient(
                    api_key="test-key", base_url=upstream.base_url, transport="native"
                ) as native_client,
            ):
                clients.update(sync=sync_client, async_=async_client, native=native_client)
                yield

    async def chat(_request: Request) -> Response:
        messages = [{"role": "user", "content": QUESTION}]
        client = clients["async_" if kind == "async" else kind]
        stream: reactivex.Observable[ChatEvent] = client.chat_stream(model=MODEL, messages=messages)
        return ui_message_stream_response(stream)

    async def ping(_request: Request) -> Response:
        return PlainTextResponse("pong")

    return Starlette(
        routes=[Route("/chat", chat, methods=["POST"]), Route("/ping", ping)], lifespan=lifespan
    )


@pytest.mark.parametrize("kind", ["sync", "async", "native"])
def test_a_client_hanging_up_cancels_the_upstream_request_within_a_second(
    upstream: OfflineServer, kind: str
) -> None:
    with serve(proxy_app(upstream, kind)) as base_url, httpx.Client(base_url=base_url) as http:
        deltas = 0
        with http.stream("POST", "/chat", json={}) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"text-delta"' in line:
                    deltas += 1
                if deltas == 3:
                    # The stream is paced: the event loop must still answer other requests.
                    started = time.monotonic()
                    assert http.get("/ping").text == "pong"
                    assert time.monotonic() - started < 0.5
                if deltas == 5:
                    break
        hung_up = time.monotonic()
        # Leaving the block closed the connection mid-reply.
        (request,) = upstream.requests
        time.sleep(max(0.0, hung_up + 1.0 - time.monotonic()))
        sent = len(request.sent_events)
        time.sleep(0.3)  # six pacing intervals: a live stream would have sent six more events
    assert len(request.sent_events) == sent
    assert "[DONE]" not in request.sent_events
    assert "message-end" not in request.sent_events


def test_a_sync_stream_is_consumed_off_the_event_loop(upstream: OfflineServer) -> None:
    upstream.pacing = 0.02
    with serve(proxy_app(upstream, "sync")) as base_url, httpx.Client(base_url=base_url) as http:
        done = threading.Event()

        def read() -> None:
            http.post("/chat", json={}).read()
            done.set()

        reader = threading.Thread(target=read)
        reader.start()
        while not upstream.requests:
            time.sleep(0.01)
        times = []
        for _ in range(5):
            started = time.monotonic()
            http.get("/ping")
            times.append(time.monotonic() - started)
        assert not done.is_set(), "the reply should still be streaming"
        reader.join(30)
    assert max(times) < 0.5


def test_an_http_error_status_becomes_an_error_chunk_without_the_key() -> None:
    key = "co-abcdefghijklmnopqrstuvwxyz0123456789"
    body = {"message": f"invalid api token: Bearer {key}"}
    with ScriptedServer(default=json_response(401, body)) as upstream:
        with Client(api_key=key, base_url=upstream.base_url, max_retries=0) as cohere:

            def app(_request: Request) -> Response:
                messages = [{"role": "user", "content": "Hi"}]
                return ui_message_stream_response(
                    cohere.chat_stream(model=MODEL, messages=messages)
                )

            with TestClient(Starlette(routes=[Route("/", app)])) as client:
                response = client.get("/")
    chunks = ui_chunks(response.content)
    assert [c["type"] for c in chunks] == ["start", "start-step", "error"]
    assert "401" in chunks[-1]["errorText"]
    assert key not in response.text and "abcdefghijklmnop" not in response.text
