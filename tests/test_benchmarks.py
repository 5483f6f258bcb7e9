"""Smoke test of ``benchmarks/``: the scripts run, and what they compare is correct.

Speed is never asserted here (the machine is shared); what is asserted is that every
contender decoded the same events, that the operators produced what the generated stream
holds, and that the quick run of ``benchmarks/run.py`` fills every section of its report.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx_aiohttp
import pytest

from benchmarks import contenders, run
from benchmarks.loopback import LoopbackServer, delta_chunk, stamp_of_line
from benchmarks.streams import Reply, make_reply, payloads_of
from operators import (
    assemble_tool_calls,
    buffer_sentences,
    final_message,
    pair_citations,
    text_only,
)
from streamkit import ContentDeltaEvent, from_sse_bytes, to_iterator


@pytest.fixture(scope="module")
def reply() -> Reply:
    return make_reply(3_000)


def test_generated_reply_is_deterministic_and_exact() -> None:
    first, second = make_reply(1_000, seed=3), make_reply(1_000, seed=3)
    assert first.body() == second.body()
    assert first.events == 1_000
    assert len(list(payloads_of(first.chunks))) == 1_000
    assert make_reply(1_000, seed=4).body() != first.body()
    with pytest.raises(ValueError, match="at least 100"):
        make_reply(99)


def test_generated_reply_has_every_kind_of_event(reply: Reply) -> None:
    kinds = {json.loads(payload)["type"] for payload in reply.payloads()}
    assert kinds == {
        "message-start",
        "tool-plan-delta",
        "tool-call-start",
        "tool-call-delta",
        "tool-call-end",
        "content-start",
        "content-delta",
        "citation-start",
        "citation-end",
        "content-end",
        "message-end",
    }
    assert reply.chunks[-1] == b"data: [DONE]\n\n"
    # The citations cite the text at their offsets, and the arguments are JSON.
    assert all(reply.text[start:end] == text for start, end, text in reply.citations)
    assert all(isinstance(json.loads(call.arguments), dict) for call in reply.tool_calls)


@pytest.mark.parametrize("name", list(contenders.CONTENDERS))
def test_every_contender_decodes_the_same_events(reply: Reply, name: str) -> None:
    events: list[object] = []
    contenders.CONTENDERS[name](reply.chunks, events.append)
    expected = [json.loads(payload) for payload in reply.payloads()]
    assert [contenders.normalise(event) for event in events] == expected


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.mark.parametrize("name", list(contenders.SOCKET_CONTENDERS))
def test_every_socket_contender_decodes_the_same_events(
    server: LoopbackServer, reply: Reply, name: str
) -> None:
    # The loopback server generates the same reply (same size, default seed) on its side.
    events: list[object] = []
    contenders.SOCKET_CONTENDERS[name](server.base_url, f"reply:{reply.events}", events.append)
    expected = [json.loads(payload) for payload in reply.payloads()]
    assert [contenders.normalise(event) for event in events] == expected


def test_the_httpx_aiohttp_pool_is_not_capped_at_100_connections(server: LoopbackServer) -> None:
    async def connector_limit() -> int:
        async with contenders.httpx_aiohttp_pool() as http:
            await http.get(server.base_url)  # aiohttp's session is made on first use
            transport = http._transport
            assert isinstance(transport, httpx_aiohttp.AiohttpTransport)
            assert isinstance(transport.client, aiohttp.ClientSession)
            return transport.client.connector.limit if transport.client.connector else -1

    assert asyncio.run(connector_limit()) == 0  # aiohttp: no limit


def test_the_json_floor_reads_the_same_payloads(reply: Reply) -> None:
    loaded: list[object] = []
    contenders.json_loads_floor(reply.payloads(), loaded.append)
    assert loaded == [json.loads(payload) for payload in reply.payloads()]


def test_check_parse_accepts_the_generated_reply(reply: Reply) -> None:
    run.check_parse(reply)


def test_operators_reproduce_the_generated_reply(reply: Reply) -> None:
    out = run.PipelineOutputs()
    stream = from_sse_bytes(reply.chunks)
    stream.pipe(text_only(), buffer_sentences()).subscribe(out.sentences.append)
    stream.pipe(assemble_tool_calls()).subscribe(out.calls.append)
    stream.pipe(pair_citations()).subscribe(out.citations.append)
    stream.pipe(final_message()).subscribe(out.messages.append)
    run.check_pipeline(reply, out)
    with pytest.raises(AssertionError, match="text"):
        run.check_pipeline(reply, run.PipelineOutputs(sentences=["wrong"]))


def test_stamped_deltas_decode_with_their_stamp() -> None:
    chunk = delta_chunk(1234567)
    line = chunk.decode().splitlines()[1]
    assert stamp_of_line(line) == 1234567
    body = (
        b'data: {"type":"message-start","delta":{"message":{"role":"assistant"}}}\n\n'
        + chunk
        + b'data: {"type":"message-end","delta":{"finish_reason":"COMPLETE"}}\n\n'
    )
    events = list(to_iterator(from_sse_bytes(body)))
    delta = events[1]
    assert isinstance(delta, ContentDeltaEvent)
    assert run._stamp(delta) == 1234567
    assert delta.text == " token"


def test_quick_run_fills_every_section(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    report = run.main(["--quick", "--output", str(output)])
    text = output.read_text()
    for title in (
        "## Headline",
        "## Parse",
        "## Profile: streamkit",
        "## Pipeline",
        "## Latency",
        "## Concurrency",
        "## Memory per idle stream",
        "concurrent streams on one asyncio loop",
        "## Where streamkit's time goes",
        "## Scale",
        "## Parsers: HTTP/1.1 response parsing per chunk",
        "## Concurrency summary",
        "streamkit AsyncClient (httpx-aiohttp) → subscribe on_next",
        "streamkit AsyncClient (httpx-aiohttp, subscribe)",
        "python benchmarks/run.py --quick",
    ):
        assert title in text
    # Every concurrency trial delivered every event of every stream, for both clients.
    ours, sdk = report.facts["streams"]
    assert ours >= run.QUICK.concurrency_start and sdk >= run.QUICK.concurrency_start
    assert report.facts["streams_native"] >= run.QUICK.concurrency_start
    assert report.facts["streams_native_httptools"] >= run.QUICK.concurrency_start
    assert report.facts["streams_aiohttp"] >= run.QUICK.concurrency_start
    assert set(report.facts["cpu_at_common"]) == set(run.CONCURRENCY_CONTENDERS)
    assert set(report.facts["parsers"]) == {"h11", "httptools", "json"}
    trials = [value for key, value in report.facts.items() if key.startswith("thousand ")]
    assert len(trials) == 3
    assert all(trial.events == trial.expected and not trial.failures for trial in trials)
    assert set(report.facts["latency_added"]) == set(run.LATENCY_CONTENDERS)


def test_partial_json_benchmark_quick_run_checks_and_fills_its_table() -> None:
    from benchmarks import partial_json

    rows = partial_json.main(["--quick"])
    assert rows[0][:4] == ["size", "pieces", "streamkit", "pydantic-core"]
    assert len(rows) == 3 and all(cell != "-" for row in rows[1:] for cell in row)
