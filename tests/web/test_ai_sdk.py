"""The AI SDK's own client code (the real ``ai`` npm package) reads what streamkit.web serves.

A Node script (tests/web/node/read_ui_message.mjs) POSTs a UIMessage list the way ``useChat``
does (``DefaultChatTransport``) to a real uvicorn server running `ui_message_stream_response`
over an upstream, assembles the reply with ``readUIMessageStream`` (which validates every
chunk against the package's zod schema), and prints it; the test compares it with the message
streamkit folds from the same upstream.

CI installs the package (``npm ci --prefix tests/web/node``) and sets
``STREAMKIT_REQUIRE_NODE=1``, so there this test fails rather than skips without Node.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamkit import AsyncClient, Client, OfflineServer, from_sse_file
from streamkit.web import ui_message_stream_response, ui_messages_to_cohere
from tests.scripted_server import Chunk, Finish, Headers, ScriptedServer, Step
from tests.web.assemble import fold, summary_of_message
from tests.web.chat_app import OwnedClientApp
from tests.web.test_encode import FIXTURES, OFFLINE_CASES
from tests.web.uvicorn_server import serve

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "read_ui_message.mjs"
MODEL = "command-a-03-2025"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_DIR / "node_modules" / "ai").is_dir():
        message = "needs node and `npm ci --prefix tests/web/node`"
        if os.environ.get("STREAMKIT_REQUIRE_NODE"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def read_with_ai_sdk(node: str, url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(SCRIPT), url],
        input=json.dumps(messages),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def summary_of_ui_message(message: dict[str, Any]) -> dict[str, Any]:
    """What the AI SDK assembled, in the shape of `summary_of_message`."""
    assert message["role"] == "assistant"
    text = plan = reasoning = ""
    calls: list[dict[str, Any]] = []
    citations: list[dict[str, Any]] = []
    sources: set[str] = set()
    for part in message["parts"]:
        kind = part["type"]
        if kind == "text":
            if part.get("providerMetadata") == {"cohere": {"toolPlan": True}}:
                plan += part["text"]
            else:
                text += part["text"]
            assert part["state"] == "done"
        elif kind == "reasoning":
            reasoning += part["text"]
            assert part["state"] == "done"
        elif kind.startswith("tool-"):
            assert part["state"] == "input-available"
            calls.append({"id": part["toolCallId"], "name": kind[5:], "input": part["input"]})
        elif kind in ("source-document", "source-url"):
            sources.add(part["sourceId"])
        elif kind == "data-citation":
            data = part["data"]
            citations.append({key: data[key] for key in ("start", "end", "text", "sources")})
        else:
            assert kind == "step-start", part
    assert {source for c in citations for source in c["sources"]} <= sources
    return {
        "text": text,
        "reasoning": reasoning,
        "tool_plan": plan,
        "tool_calls": calls,
        "citations": citations,
    }


def user_says(text: str) -> list[dict[str, Any]]:
    return [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def offline() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


def proxy(base_url: str, extra: dict[str, Any]) -> Starlette:
    clients: list[Client] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        with Client(api_key="test-key", base_url=base_url) as client:
            clients.append(client)
            yield

    async def chat(request: Request) -> Response:
        messages = ui_messages_to_cohere(await request.json())
        stream = clients[0].chat_stream(model=MODEL, messages=messages, **extra)
        return ui_message_stream_response(stream)

    return Starlette(routes=[Route("/api/chat", chat, methods=["POST"])], lifespan=lifespan)


@pytest.mark.parametrize("extra", OFFLINE_CASES)
def test_the_ai_sdk_assembles_what_streamkit_folds(
    node: str, offline: OfflineServer, extra: dict[str, Any]
) -> None:
    question = "What is the weather in Paris?"
    with serve(proxy(offline.base_url, extra)) as base_url:
        result = read_with_ai_sdk(node, f"{base_url}/api/chat", user_says(question))
    assert result["errors"] == []
    message = result["message"]
    with Client(api_key="test-key", base_url=offline.base_url) as client:
        messages = [{"role": "user", "content": question}]
        folded, error = fold(client.chat_stream(model=MODEL, messages=messages, **extra))
    assert error is None
    assert summary_of_ui_message(message) == summary_of_message(folded)
    assert message["id"] == folded.id
    assert message["metadata"]["finishReason"] == folded.finish_reason
    assert folded.usage is not None
    assert message["metadata"]["usage"] == folded.usage.model_dump(mode="json", exclude_none=True)


def test_the_ai_sdk_sees_an_in_stream_error_as_an_error_chunk(node: str) -> None:
    recorded = FIXTURES[0].parent / "error_mid_stream.sse"
    script: list[Step] = [Headers(), Chunk(recorded.read_bytes()), Finish()]
    with ScriptedServer(default=script) as upstream:
        with serve(proxy(upstream.base_url, {})) as base_url:
            result = read_with_ai_sdk(node, f"{base_url}/api/chat", user_says("Search the KB"))
    folded, error = fold(from_sse_file(recorded))
    assert error is not None
    assert result["errors"] == [
        "the model generated an invalid tool call: unknown tool 'search_kb' "
        "(available tools: search_knowledge_base)"
    ]
    assert result["message"]["parts"][1]["text"] == folded.message.tool_plan


def test_the_ai_sdk_reads_the_chat_app(node: str, offline: OfflineServer) -> None:
    question = "What is the weather in Paris?"
    app = OwnedClientApp(lambda: AsyncClient("test-key", base_url=offline.base_url))
    with serve(app) as base_url:
        result = read_with_ai_sdk(node, f"{base_url}/api/chat", user_says(question))
    assert result["errors"] == []
    with Client(api_key="test-key", base_url=offline.base_url) as client:
        messages = [{"role": "user", "content": question}]
        folded, error = fold(client.chat_stream(model=MODEL, messages=messages))
    assert error is None
    assert summary_of_ui_message(result["message"]) == summary_of_message(folded)
    assert result["message"]["metadata"]["finishReason"] == folded.finish_reason
