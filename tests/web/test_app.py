"""`create_app`: the chat page, /api/info and /api/chat, over a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from streamkit import AsyncClient, Client, OfflineServer
from streamkit.web import create_app
from tests.scripted_server import ScriptedServer, json_response
from tests.web.chat_app import OwnedClientApp
from tests.web.uvicorn_server import serve

MODEL = "command-a-03-2025"
KEY = "co-abcdefghijklmnopqrstuvwxyz0123456789"
STATIC = ["chat.js", "chat.css", "eventsource-parser.js", "favicon.svg"]


@pytest.fixture
def upstream() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


def user(text: str, message_id: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def request_body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "chat-1", "messages": messages, "trigger": "submit-message"}


def ui_chunks(body: str) -> list[dict[str, Any]]:
    frames = body.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""], frames[-3:]
    return [json.loads(frame.removeprefix("data: ")) for frame in frames[:-2]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def offline_reply(messages: list[dict[str, Any]]) -> str:
    """What streamkit folds of the offline backend's reply to ``messages``."""
    with Client.offline() as client:
        return client.chat_stream(model=MODEL, messages=messages).final_message().text


def keyed_app(upstream: OfflineServer, **options: Any) -> OwnedClientApp:
    return OwnedClientApp(lambda: AsyncClient(KEY, base_url=upstream.base_url), **options)


# ----------------------------------------------------------------------------- the page


def test_the_page_and_its_assets_are_served_with_the_hooks(upstream: OfflineServer) -> None:
    with serve(keyed_app(upstream)) as base_url, httpx.Client(base_url=base_url) as http:
        page = http.get("/")
        assets = {name: http.get(f"/static/{name}") for name in STATIC}
        missing = http.get("/static/index.py")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert re.search(r"<textarea[^>]*name=\"prompt\"", html)
    assert 'data-action="stop"' in html
    assert 'data-role="conversation"' in html
    assert 'src="static/chat.js"' in html and 'href="static/chat.css"' in html
    assert assets["chat.js"].headers["content-type"].startswith("text/javascript")
    assert assets["chat.css"].headers["content-type"].startswith("text/css")
    script = assets["chat.js"].text
    for hook in ('"data-role": "assistant"', '"mark"', "AbortController", "api/info"):
        assert hook in script
    assert missing.status_code == 404


@pytest.mark.parametrize("name", ["index.html", *STATIC])
def test_the_page_requests_nothing_from_elsewhere(name: str) -> None:
    with TestClient(create_app(AsyncClient("k"))) as http:
        text = http.get("/" if name == "index.html" else f"/static/{name}").text
    text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, never fetched
    assert "http://" not in text and "https://" not in text
    assert "//" not in re.sub(r"^\s*//.*$|\s//\s.*$", "", text, flags=re.M)  # no //host URLs


def test_the_script_never_parses_variable_html() -> None:
    with TestClient(create_app(AsyncClient("k"))) as http:
        script = http.get("/static/chat.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "new Function" not in script


# ----------------------------------------------------------------------------- the API


def test_api_info_names_the_backend_never_the_key(upstream: OfflineServer) -> None:
    with TestClient(create_app(AsyncClient(KEY, base_url=upstream.base_url))) as http:
        cohere = http.get("/api/info")
    offline = AsyncClient.offline()
    with TestClient(create_app(offline, model="m")) as http:
        local = http.get("/api/info").json()
    asyncio.run(offline.aclose())
    assert cohere.json()["backend"] == "cohere"
    assert KEY not in cohere.text and upstream.base_url not in cohere.text
    assert local["backend"] == "offline" and local["model"] == "m"


def test_a_multi_turn_conversation(upstream: OfflineServer) -> None:
    with serve(keyed_app(upstream)) as base_url, httpx.Client(base_url=base_url) as http:
        first = [user("Tell me about Paris", "u1")]
        reply = http.post("/api/chat", json=request_body(first))
        one = ui_chunks(reply.text)
        assistant = {
            "id": one[0]["messageId"],
            "role": "assistant",
            "parts": [{"type": "step-start"}, {"type": "text", "text": text_of(one)}],
        }
        second = [*first, assistant, user("And Lyon?", "u2")]
        two = ui_chunks(http.post("/api/chat", json=request_body(second)).text)
    assert reply.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert "access-control-allow-origin" not in reply.headers
    assert text_of(one) == offline_reply([{"role": "user", "content": "Tell me about Paris"}])
    sent = upstream.requests[1].body["messages"]
    assert sent == [
        {"role": "user", "content": "Tell me about Paris"},
        {"role": "assistant", "content": text_of(one)},
        {"role": "user", "content": "And Lyon?"},
    ]
    assert text_of(two) == offline_reply(sent)
    assert two[-1]["type"] == "finish"
    assert two[-1]["messageMetadata"]["finishReason"] == "COMPLETE"


def test_a_body_over_the_limit_is_413(upstream: OfflineServer) -> None:
    big = request_body([user("x" * 2000, "u1")])
    with serve(keyed_app(upstream, max_body_size=1000)) as base_url:
        declared = httpx.post(f"{base_url}/api/chat", json=big)

        def chunked() -> Iterator[bytes]:  # no content-length: counted as it arrives
            raw = json.dumps(big).encode()
            yield from (raw[i : i + 100] for i in range(0, len(raw), 100))

        streamed = httpx.post(f"{base_url}/api/chat", content=chunked())
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {"error": "the request body is over 1000 bytes"}
        assert "\n" not in response.text
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{not json", "not JSON", id="malformed-json"),
        pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param(b'{"id": "c"}', "no 'messages' list", id="no-messages"),
        pytest.param(b'{"messages": [{"role": "robot", "parts": []}]}', "role", id="bad-role"),
        pytest.param(b'{"messages": [{"role": "user", "parts": [{}]}]}', "'type'", id="bad-part"),
    ],
)
def test_a_malformed_request_is_400_in_one_line(
    upstream: OfflineServer, body: bytes, message: str
) -> None:
    with TestClient(create_app(AsyncClient(KEY, base_url=upstream.base_url))) as http:
        response = http.post("/api/chat", content=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert "\n" not in response.text
    assert upstream.requests == []


def test_cors_headers_only_for_configured_origins(upstream: OfflineServer) -> None:
    origin = {"origin": "http://localhost:3000"}
    plain = create_app(AsyncClient(KEY, base_url=upstream.base_url))
    allowed = create_app(
        AsyncClient(KEY, base_url=upstream.base_url), cors_origins=["http://localhost:3000"]
    )
    with TestClient(plain) as http:
        none = http.get("/api/info", headers=origin)
        preflight = http.options("/api/chat", headers=origin)
    with TestClient(allowed) as http:
        some = http.get("/api/info", headers=origin)
    assert "access-control-allow-origin" not in none.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert some.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_the_key_is_in_no_response(upstream: OfflineServer) -> None:
    rejected = json_response(401, {"message": f"invalid api token: Bearer {KEY}"})
    with ScriptedServer(default=rejected) as failing:
        failing_app = OwnedClientApp(
            lambda: AsyncClient(KEY, base_url=failing.base_url, max_retries=0)
        )
        responses = []
        for app in (keyed_app(upstream), failing_app):
            with serve(app) as base_url, httpx.Client(base_url=base_url) as http:
                responses += [http.get(path) for path in ("/", "/api/info")]
                responses += [http.get(f"/static/{name}") for name in STATIC]
                responses.append(http.post("/api/chat", json=request_body([user("Hi", "1")])))
                responses.append(http.post("/api/chat", content=b"{"))
    error = ui_chunks(responses[-2].text)
    assert [chunk["type"] for chunk in error][-1] == "error"
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"
    for response in responses:
        assert KEY not in response.text
        assert KEY not in str(response.headers)


def test_is_offline_tells_the_offline_client_apart() -> None:
    offline = AsyncClient.offline()
    assert offline.is_offline and not AsyncClient("k").is_offline
    asyncio.run(offline.aclose())
    with Client.offline() as client:
        assert client.is_offline and not Client("k").is_offline


def test_max_body_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_body_size"):
        create_app(AsyncClient("k"), max_body_size=0)
