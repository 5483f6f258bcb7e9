"""The offline backend over real HTTP: framing, every reply kind, errors, the official SDK."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import cohere
import httpx
import pytest

from streamkit._offline import OfflineServer
from streamkit._replies import script_reply
from streamkit.errors import ServerNotRunningError

JSON = dict[str, Any]
AUTH = {"Authorization": "Bearer test-token"}
BODY: JSON = {
    "model": "command-a-03-2025",
    "messages": [{"role": "user", "content": 'Is "Paris" the capital of France? 🇫🇷'}],
}
WEATHER: JSON = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}
NOW: JSON = {"type": "function", "function": {"name": "current_time"}}
TOOL_RESULTS: list[JSON] = [
    *BODY["messages"],
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "get_weather_k3j9x2m1q8zt",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "get_weather_k3j9x2m1q8zt", "content": '{"sky": "sunny"}'},
]
DOCUMENTS: list[Any] = ["Paris is the capital of France.", {"id": "d1", "data": {"text": "Lyon."}}]
KINDS: dict[str, JSON] = {
    "text": BODY,
    "thinking": {**BODY, "thinking": {"type": "enabled"}},
    "tools": {**BODY, "tools": [WEATHER, NOW]},
    "tools+thinking": {**BODY, "tools": [WEATHER, NOW], "thinking": {"type": "enabled"}},
    "tool-results": {**BODY, "messages": TOOL_RESULTS, "tools": [WEATHER]},
    "documents": {**BODY, "documents": DOCUMENTS},
    "logprobs": {**BODY, "logprobs": True},
    "max_tokens": {**BODY, "max_tokens": 5},
    "stop_sequences": {**BODY, "stop_sequences": ["e.g."]},
}
UUID_HEX = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server() -> Iterator[OfflineServer]:
    with OfflineServer() as running:
        yield running


@pytest.fixture
def client(server: OfflineServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=10) as http:
        yield http


def parse_sse(text: str) -> list[JSON]:
    """Parse the exact framing of §1; fail on anything else."""
    assert text.endswith("\n\ndata: [DONE]\n\n"), text[-200:]
    events: list[JSON] = []
    for frame in text[: -len("data: [DONE]\n\n")].split("\n\n")[:-1]:
        match = re.fullmatch(r"event: ([a-z-]+)\ndata: (\{.*\})", frame)
        assert match is not None, frame
        event = json.loads(match.group(2))
        assert event["type"] == match.group(1)
        events.append(event)
    return events


def stream(client: httpx.Client, body: JSON) -> tuple[httpx.Response, list[JSON]]:
    response = client.post("/v2/chat", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    return response, parse_sse(response.text)


# --- Framing ------------------------------------------------------------------------------------


def test_streamed_reply_is_framed_exactly(client: httpx.Client) -> None:
    response, events = stream(client, BODY)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert UUID_HEX.fullmatch(response.headers["x-request-id"])
    assert events[0]["type"] == "message-start" and events[-1]["type"] == "message-end"
    # Compact one-line JSON with raw UTF-8, as Cohere sends it.
    assert '"type":"content-delta"' in response.text and "café" in response.text
    assert "\\u" not in response.text


def test_each_event_is_one_chunk(server: OfflineServer) -> None:
    body = json.dumps({**BODY, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", _port(server))) as sock:
        sock.sendall(
            b"POST /v2/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        reader = sock.makefile("rb")
        while reader.readline() != b"\r\n":
            pass
        chunks: list[bytes] = []
        while True:
            size = int(reader.readline(), 16)
            chunks.append(reader.read(size))
            assert reader.readline() == b"\r\n"
            if size == 0:
                break
    assert chunks[-2:] == [b"data: [DONE]\n\n", b""]
    for chunk in chunks[:-2]:
        assert re.fullmatch(rb"event: [a-z-]+\ndata: [^\n]+\n\n", chunk), chunk


def test_http_1_0_streams_until_the_connection_closes(server: OfflineServer) -> None:
    body = json.dumps({**BODY, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", _port(server))) as sock:
        sock.sendall(
            b"POST /v2/chat HTTP/1.0\r\nAuthorization: Bearer t\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        raw = sock.makefile("rb").read()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert parse_sse(payload.decode()) == script_reply(BODY).stream_events()


def test_events_arrive_while_the_server_is_still_writing() -> None:
    # A minute between events: the server cannot have written the last one when the client
    # sees the first; stop() then cuts the paced stream short at once.
    with OfflineServer(pacing=60) as server, httpx.Client(headers=AUTH) as http:
        request = {**BODY, "stream": True}
        with http.stream("POST", server.base_url + "/v2/chat", json=request) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: message-start"
            assert json.loads(next(lines).removeprefix("data: "))["type"] == "message-start"
            assert "message-end" not in server.requests[-1].sent_events
    # stop() has joined the handler: it wrote exactly one event, then was cut short.
    assert server.requests[-1].sent_events == ["message-start"]


def test_pacing_zero_sends_everything(server: OfflineServer, client: httpx.Client) -> None:
    _, events = stream(client, BODY)
    record = server.requests[-1]
    # The handler notes "[DONE]" just after writing it, so the client may read it first.
    deadline = time.monotonic() + 5
    while "[DONE]" not in record.sent_events and time.monotonic() < deadline:
        time.sleep(0.005)
    assert record.sent_events == [e["type"] for e in events] + ["[DONE]"]


# --- Every kind, both forms ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [pytest.param(body, id=kind) for kind, body in KINDS.items()])
def test_both_forms_describe_the_same_message(client: httpx.Client, body: JSON) -> None:
    _, events = stream(client, body)
    response = client.post("/v2/chat", json=body)
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    reply = script_reply(body)
    # The wire carries the scripted reply exactly; tests/test_replies.py checks the grammar of
    # these events and that folding them gives `response()`, for every kind.
    assert events == reply.stream_events()
    assert response.json() == reply.response()
    assert events[0]["id"] == response.json()["id"]


def test_requests_are_recorded(server: OfflineServer, client: httpx.Client) -> None:
    client.post("/v2/chat?trace=1", json=BODY, headers={"X-Custom": "yes"})
    recorded = server.requests[-1]
    assert (recorded.method, recorded.path, recorded.body) == ("POST", "/v2/chat?trace=1", BODY)
    assert recorded.headers["x-custom"] == "yes"
    assert recorded.headers["authorization"] == "Bearer test-token"


# --- Errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer"}, id="no-token"),
        pytest.param({"Authorization": "Basic c2VjcmV0LXRva2Vu"}, id="not-bearer"),
        pytest.param({"Authorization": "secret-token"}, id="bare-token"),
    ],
)
def test_unauthorised(server: OfflineServer, headers: dict[str, str]) -> None:
    response = httpx.post(server.base_url + "/v2/chat", json=BODY, headers=headers)
    assert response.status_code == 401
    error = response.json()
    assert set(error) == {"id", "message"} and error["message"]
    assert "secret" not in response.text and "c2Vj" not in response.text
    assert UUID_HEX.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize(
    ("content", "status", "complaint"),
    [
        pytest.param(b"{not json", 400, "valid JSON", id="invalid-json"),
        pytest.param(b"", 400, "valid JSON", id="empty"),
        pytest.param(b"[1, 2]", 400, "JSON object", id="not-an-object"),
        pytest.param(b"null", 400, "JSON object", id="null"),
        pytest.param(b"[" * 100_000, 400, "valid JSON", id="too-deep"),
        pytest.param(b'{"messages": [{"role": "user"}]}', 400, "'model'", id="no-model"),
        pytest.param(b'{"model": "m"}', 400, "'messages'", id="no-messages"),
        pytest.param(b'{"model": "m", "messages": []}', 400, "non-empty", id="empty-messages"),
    ],
)
def test_bad_bodies(client: httpx.Client, content: bytes, status: int, complaint: str) -> None:
    response = client.post("/v2/chat", content=content)
    assert response.status_code == status
    assert complaint in response.json()["message"]
    assert UUID_HEX.fullmatch(response.headers["x-request-id"])


def test_unknown_routes_and_methods(client: httpx.Client) -> None:
    assert client.post("/v1/chat", json=BODY).status_code == 404
    assert client.get("/").status_code == 404
    wrong_method = client.get("/v2/chat")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert "message" in wrong_method.json()
    # The connection is still usable after every error.
    assert client.post("/v2/chat", json=BODY).status_code == 200


def test_chunked_request_bodies_are_read(client: httpx.Client) -> None:
    response = client.post("/v2/chat", content=iter([json.dumps(BODY).encode()]))
    assert response.status_code == 200
    assert response.json()["id"] == script_reply(BODY).id


# --- Connections --------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(client: httpx.Client) -> None:
    first = client.post("/v2/chat", json={**BODY, "stream": True})
    second = client.post("/v2/chat", json=BODY)
    third = client.post("/v2/chat", json={**BODY, "stream": True})
    addresses = {
        r.extensions["network_stream"].get_extra_info("client_addr") for r in (first, second, third)
    }
    assert len(addresses) == 1
    assert parse_sse(third.text) == parse_sse(first.text)


def test_a_client_hanging_up_mid_stream_leaves_the_server_serving(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with OfflineServer(pacing=0.05) as server:
        with httpx.Client(headers=AUTH) as http:
            request = {**BODY, "stream": True}
            with http.stream("POST", server.base_url + "/v2/chat", json=request) as response:
                assert next(response.iter_lines()) == "event: message-start"
            # Closing mid-stream dropped that connection; the server still answers.
            assert http.post(server.base_url + "/v2/chat", json=BODY).status_code == 200
        _wait_for_idle(server)
        sent = server.requests[0].sent_events
        assert "[DONE]" not in sent and len(sent) < len(script_reply(BODY).stream_events())
    assert capfd.readouterr().err == ""


def _wait_for_idle(server: OfflineServer) -> None:
    """Wait until every connection handler has finished (the clients are closed)."""
    name = f"streamkit-offline-{_port(server)}-connection"
    for thread in threading.enumerate():
        if thread.name == name:
            thread.join(10)
            assert not thread.is_alive()


def _port(server: OfflineServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def test_start_and_stop_are_idempotent() -> None:
    server = OfflineServer()
    with pytest.raises(ServerNotRunningError, match="not running"):
        _ = server.base_url
    assert server.start() is server.start()
    url = server.base_url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    server.stop()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/v2/chat", json=BODY, headers=AUTH)
    with pytest.raises(ValueError, match="pacing"):
        OfflineServer(pacing=-1)


# --- The official SDK ---------------------------------------------------------------------------


@pytest.fixture
def sdk(server: OfflineServer) -> Iterator[Any]:
    with httpx.Client(timeout=10) as http:
        yield cohere.ClientV2(api_key="x", base_url=server.base_url, httpx_client=http)


@pytest.mark.parametrize(
    "body",
    [pytest.param(KINDS[kind], id=kind) for kind in ("thinking", "tools", "documents", "logprobs")],
)
def test_the_official_sdk_reads_both_forms(
    server: OfflineServer, sdk: Any, body: JSON, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    expected_events = script_reply(body).stream_events()
    events = list(sdk.chat_stream(**body))
    assert server.requests[-1].body["stream"] is True
    assert [event.type for event in events] == [event["type"] for event in expected_events]
    for event, expected in zip(events, expected_events, strict=True):
        assert _plain(event.dict()) == expected
    expected = script_reply(body).response()
    response = sdk.chat(**body)
    assert server.requests[-1].body["stream"] is False
    assert response.id == expected["id"] and response.finish_reason == expected["finish_reason"]
    dumped = _plain(response.dict())
    for key in ("message", "logprobs"):
        assert _without_none(dumped.get(key)) == expected.get(key)
    assert dumped["usage"] == expected["usage"]
    assert caplog.records == []


def _plain(value: Any) -> Any:
    """The SDK types usage counts as floats: compare them as the integers they were."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value
