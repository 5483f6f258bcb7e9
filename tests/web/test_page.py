"""The page's script (chat.js) run by node against a live `create_app`, with a minimal DOM.

No browser here: `tests/web/node/run_page.mjs` gives chat.js just the DOM calls it makes and
prints the tree it built, so what it renders from real UI message streams is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamkit import AsyncClient, Client, OfflineServer
from tests.scripted_server import Chunk, Finish, Headers, ScriptedServer
from tests.web.chat_app import OwnedClientApp
from tests.web.test_app import KEY, MODEL
from tests.web.uvicorn_server import serve

NODE = shutil.which("node")
SCRIPT = Path(__file__).parent / "node" / "run_page.mjs"
FIXTURES_DIR = Path(__file__).parent.parent / "fixtures"

# CI sets STREAMKIT_REQUIRE_NODE=1: there these fail, rather than skip, without Node.
pytestmark = pytest.mark.skipif(
    NODE is None and not os.environ.get("STREAMKIT_REQUIRE_NODE"), reason="needs node"
)

Node = dict[str, Any] | str


def run_page(base_url: str, *prompts: str, stop: bool = False) -> dict[str, Any]:
    assert NODE is not None
    env = {**os.environ, "STOP_AFTER_FIRST_TOKEN": "1"} if stop else None
    result = subprocess.run(
        [NODE, str(SCRIPT), base_url, *prompts],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    page: dict[str, Any] = json.loads(result.stdout)
    return page


def text(node: Node) -> str:
    return node if isinstance(node, str) else "".join(text(child) for child in node["children"])


def find(node: Node, test: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    if isinstance(node, str):
        return []
    found = [node] if test(node) else []
    for child in node["children"]:
        found += find(child, test)
    return found


def role(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda node: node["attributes"].get("data-role") == name


def tag(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda node: node["tag"] == name


def offline_reply(messages: list[dict[str, Any]]) -> str:
    with Client.offline() as client:
        return client.chat_stream(model=MODEL, messages=messages).final_message().text


@pytest.fixture
def upstream() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


def fixture_app(name: str) -> tuple[ScriptedServer, OwnedClientApp]:
    body = (FIXTURES_DIR / name).read_bytes()
    scripted = ScriptedServer(default=[Headers(), Chunk(body), Finish()])
    return scripted, OwnedClientApp(lambda: AsyncClient(KEY, base_url=scripted.base_url))


def test_a_conversation_renders_markup_as_text(upstream: OfflineServer) -> None:
    markup = "<img src=x onerror=alert(1)>"
    app = OwnedClientApp(lambda: AsyncClient(KEY, base_url=upstream.base_url), backend="offline")
    with serve(app) as base_url:
        page = run_page(base_url, f"Hi {markup}", "And again?")
    conversation = page["conversation"]
    users = find(conversation, role("user"))
    replies = find(conversation, role("assistant"))
    assert [text(node) for node in users] == [f"Hi {markup}", "And again?"]
    assert [node["attributes"]["data-state"] for node in replies] == ["done", "done"]
    first = offline_reply([{"role": "user", "content": f"Hi {markup}"}])
    sent = upstream.requests[1].body["messages"]
    assert sent == [
        {"role": "user", "content": f"Hi {markup}"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "And again?"},
    ]
    bodies = [find(node, lambda n: n["attributes"].get("class") == "body")[0] for node in replies]
    assert [text(node) for node in bodies] == [first, offline_reply(sent)]
    assert markup in text(bodies[0])
    assert find(conversation, tag("img")) == []
    footer = text(find(replies[0], role("stats"))[0])
    assert "finish: COMPLETE" in footer and "first token: " in footer
    assert text(page["backend"]).startswith("offline backend")


def test_citations_are_marks_on_their_spans_with_numbered_sources() -> None:
    scripted, app = fixture_app("citations_documents.sse")
    with scripted, serve(app) as base_url:
        page = run_page(base_url, "Tell me about the tower")
    (reply,) = find(page["conversation"], role("assistant"))
    marks = find(reply, tag("mark"))
    assert "330 metres tall" in [text(mark) for mark in marks]
    for mark in marks:
        start, end = int(mark["attributes"]["data-start"]), int(mark["attributes"]["data-end"])
        (part,) = find(reply, lambda node: node["attributes"].get("data-part") == "text-0")
        assert text(part)[start:end] == text(mark)
    sources = find(reply, role("sources"))[0]["children"]
    assert sources and "Eiffel Tower: facts and figures" in text(find(reply, role("sources"))[0])
    assert text(page["backend"]).startswith("Cohere")


def test_thinking_is_collapsed_and_tool_calls_show_their_input() -> None:
    for name, hook in (("thinking_text.sse", "thinking"), ("tool_call_pretty.sse", "tool-call")):
        scripted, app = fixture_app(name)
        with scripted, serve(app) as base_url:
            page = run_page(base_url, "Hi")
        (reply,) = find(page["conversation"], role("assistant"))
        (found, *_) = find(reply, role(hook))
        assert text(found), name
        if found["tag"] == "details":
            assert "open" not in found["attributes"]
        else:
            (code,) = find(found, role("tool-input"))
            json.loads(text(code))  # the parsed input, pretty-printed


def test_stop_aborts_the_reply_and_the_upstream_request() -> None:
    with OfflineServer(pacing=0.02) as upstream:
        app = OwnedClientApp(lambda: AsyncClient(KEY, base_url=upstream.base_url))
        with serve(app) as base_url:
            page = run_page(base_url, "Tell me about Paris", "Hi", stop=True)
            time.sleep(0.3)  # fifteen pacing intervals: a live stream would have sent more
            sent = [list(request.sent_events) for request in upstream.requests]
            time.sleep(0.2)
            later = [list(request.sent_events) for request in upstream.requests]
    replies = find(page["conversation"], role("assistant"))
    assert [node["attributes"]["data-state"] for node in replies] == ["stopped", "stopped"]
    assert all("stopped" in text(find(node, role("stats"))[0]) for node in replies)
    assert len(sent) == 2 and later == sent
    assert not any("[DONE]" in events for events in sent)
    # The stopped reply is part of the conversation: the second request carries it.
    second = upstream.requests[1].body["messages"]
    assert [message["role"] for message in second] == ["user", "assistant", "user"]
