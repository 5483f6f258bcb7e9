"""Load: 200 concurrent chats through one `streamkit serve` process against a paced upstream.

The server is the real command, run as a subprocess, pointed at an offline backend in this
process through ``CO_API_KEY``/``CO_API_URL``, which counts what it was asked and sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from streamkit import Client, OfflineServer
from tests.test_cli_serve import serving
from tests.web.test_app import KEY, MODEL, request_body, user

STREAMS = 200


@pytest.fixture
def upstream() -> Iterator[OfflineServer]:
    with OfflineServer(pacing=0.01) as server:
        yield server


@pytest.fixture
def slow_upstream() -> Iterator[OfflineServer]:
    """A reply of ~90 events takes ~4.5 s: no client can read one whole before hanging up,
    however loaded the machine (at 10 ms a CI run once saw a reply finish first)."""
    with OfflineServer(pacing=0.05) as server:
        yield server


def open_connections(server: OfflineServer) -> int:
    """Connections the offline backend is still serving (its own bookkeeping)."""
    httpd = server._httpd
    assert httpd is not None
    with httpd._connections_lock:
        return len(httpd._connections)


def upstream_env(upstream: OfflineServer) -> dict[str, str]:
    return {"CO_API_KEY": KEY, "CO_API_URL": upstream.base_url}


def question(number: int) -> str:
    return f"Question number {number}: tell me about city {number}"


async def chat(http: httpx.AsyncClient, number: int, *, hang_up_after: int | None) -> str:
    """The reply's text; with ``hang_up_after``, hang up after that many text deltas."""
    text, deltas = [], 0
    body = request_body([user(question(number), f"u{number}")])
    async with http.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            assert chunk["type"] != "error", chunk
            if chunk["type"] == "text-delta":
                text.append(chunk["delta"])
                deltas += 1
                if deltas == hang_up_after:
                    break
    return "".join(text)


async def chats(base_url: str, *, hang_up_after: int | None = None) -> list[str]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        calls = [chat(http, n, hang_up_after=hang_up_after) for n in range(STREAMS)]
        return await asyncio.gather(*calls)


def test_200_concurrent_chats_each_get_their_exact_reply(upstream: OfflineServer) -> None:
    with serving("--model", MODEL, env=upstream_env(upstream)) as (_, base_url, _):
        started = time.monotonic()
        replies = asyncio.run(chats(base_url))
        elapsed = time.monotonic() - started
    with Client.offline() as client:
        expected = [
            client.chat_stream(model=MODEL, messages=[{"role": "user", "content": question(n)}])
            .final_message()
            .text
            for n in range(STREAMS)
        ]
    assert replies == expected
    # ("[DONE]" may be recorded after the reply is read, or not at all once it is closed.)
    assert all("message-end" in request.sent_events for request in upstream.requests)
    assert len(upstream.requests) == STREAMS
    assert elapsed < 20


def test_200_clients_hanging_up_leave_no_upstream_request_open(
    slow_upstream: OfflineServer,
) -> None:
    upstream = slow_upstream
    with serving("--model", MODEL, env=upstream_env(upstream)) as (_, base_url, _):
        partial = asyncio.run(chats(base_url, hang_up_after=3))
        hung_up = time.monotonic()
        while open_connections(upstream) and time.monotonic() < hung_up + 2:
            time.sleep(0.05)
        still_open = open_connections(upstream)
        sent = [len(request.sent_events) for request in upstream.requests]
        time.sleep(0.3)  # six pacing intervals: a live stream would have sent more
        later = [len(request.sent_events) for request in upstream.requests]
    assert all(text for text in partial)
    assert len(upstream.requests) == STREAMS
    assert still_open == 0
    assert later == sent
    assert not any("[DONE]" in request.sent_events for request in upstream.requests)
