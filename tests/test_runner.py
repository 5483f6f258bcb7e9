"""The tool runner over real HTTP: the offline backend's replies, served by a counting server.

Most tests use :func:`offline_server`: a loopback :class:`ScriptedServer` whose every answer
is the offline backend's own (``script_reply``: it calls the tools on a user turn, answers
from trailing tool results, and rejects a conversation the API would reject with 400), so
a test can count the requests and read their bodies. ``Client.offline()`` and
``AsyncClient.offline()`` (the real ``OfflineServer``) cover the plain paths.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler

from operators import assemble_tool_calls, final_message, pair_citations, text_only, tool_plan
from streamkit import (
    AsyncClient,
    Client,
    RunEvent,
    StepEndEvent,
    Tool,
    ToolResultEvent,
    run_tools,
    to_async_iterator,
    to_iterator,
)
from streamkit._replies import script_reply
from streamkit.errors import BadRequestError, OfflineRequestError, ToolDefinitionError
from tests.scripted_server import (
    Finish,
    Headers,
    RecordedRequest,
    ScriptedServer,
    Step,
    json_response,
    sse_events,
)

MODEL = "command-a-03-2025"
QUESTION = [{"role": "user", "content": "What is the weather in Paris and Tokyo?"}]


def offline_answer(request: RecordedRequest) -> list[Step]:
    """The offline backend's answer to a request, or its 400."""
    try:
        reply = script_reply(request.json())
    except OfflineRequestError as error:
        return json_response(400, {"message": str(error)})
    return [Headers(), *sse_events(reply.stream_events()), Finish()]


def looping_answer(request: RecordedRequest) -> list[Step]:
    """A model that calls ``lookup`` on every turn, whatever the conversation says."""
    step = sum(1 for m in request.json()["messages"] if m["role"] == "assistant") + 1
    call = {"id": f"lookup_{step}", "type": "function", "function": {"name": "lookup"}}
    arguments = json.dumps({"query": f"round {step}"})
    events: list[dict[str, Any]] = [
        {"type": "message-start", "id": f"m{step}", "delta": {"message": {"role": "assistant"}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Look it up again."}}},
        {
            "type": "tool-call-start",
            "index": 0,
            "delta": {"message": {"tool_calls": {**call, "function": {"name": "lookup"}}}},
        },
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}},
        },
        {"type": "tool-call-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {}}},
    ]
    return [Headers(), *sse_events(events), Finish()]


@pytest.fixture
def offline_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(default=offline_answer) as server:
        yield server


def client_for(server: ScriptedServer) -> Client:
    return Client("key", base_url=server.base_url, max_retries=0)


class Recorder:
    """Tools that record when each call started and ended."""

    def __init__(self) -> None:
        self.intervals: dict[str, tuple[float, float]] = {}

    def record(self, name: str, started: float) -> None:
        self.intervals[name] = (started, time.monotonic())

    def overlap(self) -> float:
        """How long every recorded call ran at once (negative: they did not overlap)."""
        starts = [start for start, _ in self.intervals.values()]
        ends = [end for _, end in self.intervals.values()]
        return min(ends) - max(starts)


def weather_tools(recorder: Recorder, seconds: float = 0.3) -> list[Any]:
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city.

        Args:
            city: The city's name.
        """
        started = time.monotonic()
        time.sleep(seconds)
        recorder.record("get_weather", started)
        return {"forecast": f"sunny in {city}", "temperature": 21}

    def get_time(city: str) -> dict[str, Any]:
        """The local time in a city.

        Args:
            city: The city's name.
        """
        started = time.monotonic()
        time.sleep(seconds)
        recorder.record("get_time", started)
        return {"time": f"09:30 in {city}"}

    return [get_weather, get_time]


def final(events: list[RunEvent]) -> StepEndEvent:
    last = events[-1]
    assert isinstance(last, StepEndEvent)
    return last


# --------------------------------------------------------------------------- concurrency


def test_two_sync_tools_of_one_step_run_at_once_on_a_sync_client() -> None:
    recorder = Recorder()
    with Client.offline() as client:
        run = run_tools(client, model=MODEL, messages=QUESTION, tools=weather_tools(recorder))
        events = list(to_iterator(run))
    assert set(recorder.intervals) == {"get_weather", "get_time"}
    assert recorder.overlap() > 0, recorder.intervals
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert {r.name for r in results} == {"get_weather", "get_time"}
    assert all(r.error is None and r.duration >= 0.3 for r in results)
    end = final(events)
    assert end.stop_reason == "answered" and end.step == 2
    assert "sunny in Paris" in end.response.text


def test_two_async_tools_run_at_once_on_an_async_client() -> None:
    recorder = Recorder()

    async def get_weather(city: str) -> dict[str, str]:
        """The weather in a city."""
        started = time.monotonic()
        await asyncio.sleep(0.3)
        recorder.record("get_weather", started)
        return {"forecast": f"rain in {city}"}

    async def get_time(city: str) -> str:
        """The time in a city."""
        started = time.monotonic()
        await asyncio.sleep(0.3)
        recorder.record("get_time", started)
        return f"noon in {city}"

    async def main() -> list[RunEvent]:
        async with AsyncClient.offline() as client:
            run = run_tools(client, model=MODEL, messages=QUESTION, tools=[get_weather, get_time])
            return [event async for event in to_async_iterator(run)]

    events = asyncio.run(main())
    assert recorder.overlap() > 0, recorder.intervals
    end = final(events)
    assert end.stop_reason == "answered"
    assert [m["role"] for m in end.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    # A result that is not an object is sent as {"result": ...}.
    assert end.messages[3]["content"][0]["document"]["data"] == {"result": "noon in Tokyo"}


def test_sync_and_async_tools_mix_on_both_clients() -> None:
    def get_weather(city: str) -> str:
        """Sync."""
        return f"sync {city}"

    async def get_time(city: str) -> str:
        """Async."""
        await asyncio.sleep(0)
        return f"async {city}"

    with Client.offline() as client:
        sync_events = list(
            to_iterator(
                run_tools(client, model=MODEL, messages=QUESTION, tools=[get_weather, get_time])
            )
        )

    async def main() -> list[RunEvent]:
        async with AsyncClient.offline() as client:
            run = run_tools(client, model=MODEL, messages=QUESTION, tools=[get_weather, get_time])
            return [event async for event in to_async_iterator(run)]

    for events in (sync_events, asyncio.run(main())):
        results = {e.name: e.result for e in events if isinstance(e, ToolResultEvent)}
        assert results == {"get_weather": "sync Paris", "get_time": "async Tokyo"}


# --------------------------------------------------------------------------- errors reach the model


def test_a_raising_tool_is_an_error_result_the_next_step_sends_and_reads(
    offline_server: ScriptedServer,
) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        raise LookupError(f"no station in {city}")

    with client_for(offline_server) as client:
        run = run_tools(client, model=MODEL, messages=QUESTION[:1], tools=[get_weather])
        events = list(to_iterator(run))
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert result.is_error and result.error == "LookupError: no station in Paris"
    second = offline_server.requests[1].json()
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": result.tool_call_id,
        "content": [
            {
                "type": "document",
                "document": {"data": {"error": "LookupError: no station in Paris"}},
            }
        ],
    }
    end = final(events)
    assert end.stop_reason == "answered"
    assert "the error is LookupError: no station in Paris" in end.response.text
    assert len(offline_server.requests) == 2


def test_arguments_that_do_not_validate_are_an_error_result(
    offline_server: ScriptedServer,
) -> None:
    # The schema the model sees says "days" is a string; the function wants an int. The
    # offline model fills strings from the question, so the call cannot validate.
    calls: list[Any] = []

    def forecast(city: str, days: int) -> str:
        calls.append((city, days))
        return "never"

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "string"}},
        "required": ["city", "days"],
    }
    explicit = Tool("forecast", "A forecast.", schema, forecast)
    with client_for(offline_server) as client:
        events = list(
            to_iterator(run_tools(client, model=MODEL, messages=QUESTION, tools=[explicit]))
        )
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert calls == []
    assert result.error is not None
    assert result.error.startswith("invalid arguments for forecast: days: Input should be")
    assert "invalid arguments" in json.dumps(offline_server.requests[1].json()["messages"][-1])
    assert final(events).stop_reason == "answered"


def test_an_unknown_tool_and_a_result_that_is_not_json_are_error_results() -> None:
    def lookup(query: str) -> object:
        """Returns nothing JSON can hold."""
        return {query: object()}

    with ScriptedServer(default=looping_answer) as server, client_for(server) as client:
        events = list(
            to_iterator(
                run_tools(client, model=MODEL, messages=QUESTION, tools=[lookup], max_steps=1)
            )
        )
        # The model calls "lookup"; offered only "search", it names a tool that is not there.
        renamed = Tool.from_function(lookup, name="search")
        other = list(
            to_iterator(
                run_tools(client, model=MODEL, messages=QUESTION, tools=[renamed], max_steps=1)
            )
        )
    first = next(e for e in events if isinstance(e, ToolResultEvent))
    assert first.error is not None and "not JSON" in first.error
    unknown = next(e for e in other if isinstance(e, ToolResultEvent))
    assert unknown.error == "there is no tool named 'lookup' (the tools are: search)"


# --------------------------------------------------------------------------- max_steps


def test_max_steps_stops_a_model_that_keeps_calling_tools() -> None:
    def lookup(query: str) -> dict[str, str]:
        """Look something up."""
        return {"found": query}

    with ScriptedServer(default=looping_answer) as server, client_for(server) as client:
        events = list(
            to_iterator(
                run_tools(client, model=MODEL, messages=QUESTION, tools=[lookup], max_steps=3)
            )
        )
        assert len(server.requests) == 3
    ends = [e for e in events if isinstance(e, StepEndEvent)]
    assert [(e.step, e.stop_reason) for e in ends] == [(1, None), (2, None), (3, "max_steps")]
    last = ends[-1]
    # The last step's tools ran: the conversation ends with their results, ready to go on.
    assert [m["role"] for m in last.messages] == ["user"] + ["assistant", "tool"] * 3
    assert last.tool_results[0].result == {"found": "round 3"}
    # Every step restarts its tool-call indices: the operators fold step by step.
    run = run_tools  # the operators below each subscribe anew: one more run per pipe
    with ScriptedServer(default=looping_answer) as server, client_for(server) as client:
        source = run(client, model=MODEL, messages=QUESTION, tools=[lookup], max_steps=2)
        calls = source.pipe(assemble_tool_calls(), ops.to_list()).run()
        plans = source.pipe(tool_plan(), ops.to_list()).run()
    assert [c.id for c in calls] == ["lookup_1", "lookup_2"]
    assert plans == ["Look it up again."] * 2


# --------------------------------------------------------------------------- cancellation


def test_disposing_an_async_run_cancels_the_running_tool_and_sends_nothing_more(
    offline_server: ScriptedServer,
) -> None:
    seen: list[str] = []

    async def main() -> None:
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def get_weather(city: str) -> str:
            """Never answers."""
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return city

        async with AsyncClient("key", base_url=offline_server.base_url) as client:
            run = run_tools(client, model=MODEL, messages=QUESTION, tools=[get_weather])
            events: list[RunEvent] = []
            subscription = run.subscribe(
                events.append,
                lambda error: seen.append(f"error {error!r}"),
                lambda: seen.append("completed"),
                scheduler=AsyncIOScheduler(asyncio.get_running_loop()),
            )
            await asyncio.wait_for(started.wait(), 10)
            subscription.dispose()
            await asyncio.wait_for(cancelled.wait(), 10)
            await asyncio.sleep(0.2)  # time for a wrong second request to arrive
        assert not any(isinstance(e, ToolResultEvent | StepEndEvent) for e in events)

    asyncio.run(main())
    assert seen == []  # a disposed subscription hears nothing more
    assert len(offline_server.requests) == 1


def test_leaving_a_sync_run_discards_the_tool_thread_and_cancels_async_tools(
    offline_server: ScriptedServer,
) -> None:
    release = threading.Event()
    sync_started = threading.Event()
    sync_finished = threading.Event()
    async_started = threading.Event()
    async_cancelled = threading.Event()

    def get_weather(city: str) -> str:
        """Blocks until released."""
        sync_started.set()
        release.wait(10)
        sync_finished.set()
        return city

    async def get_time(city: str) -> str:
        """Never answers."""
        async_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            async_cancelled.set()
            raise
        return city

    with client_for(offline_server) as client:
        run = run_tools(client, model=MODEL, messages=QUESTION, tools=[get_weather, get_time])
        with to_iterator(run) as events:
            for event in events:
                if event.type == "message-end":
                    assert sync_started.wait(10) and async_started.wait(10)
                    break
        assert async_cancelled.wait(10)
        release.set()
        assert sync_finished.wait(10)
        time.sleep(0.2)  # time for a wrong second request to arrive
    assert len(offline_server.requests) == 1


# --------------------------------------------------------------------------- timeouts


def test_a_tool_past_its_timeout_is_an_error_result_sync_and_async() -> None:
    release = threading.Event()
    cancelled = threading.Event()

    def get_weather(city: str) -> str:
        """Too slow."""
        release.wait(10)
        return city

    async def get_time(city: str) -> str:
        """Too slow too."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return city

    tools: list[Tool | Callable[..., Any]] = [
        Tool.from_function(get_weather, timeout=0.2),
        get_time,
    ]
    with Client.offline() as client:
        run = run_tools(client, model=MODEL, messages=QUESTION, tools=tools, tool_timeout=0.3)
        events = list(to_iterator(run))
    release.set()
    errors = {e.name: e.error for e in events if isinstance(e, ToolResultEvent)}
    assert errors == {
        "get_weather": "the tool did not finish within 0.2 seconds",
        "get_time": "the tool did not finish within 0.3 seconds",
    }
    assert cancelled.is_set()
    assert final(events).stop_reason == "answered"

    async def main() -> list[RunEvent]:
        async with AsyncClient.offline() as aclient:
            arun = run_tools(aclient, model=MODEL, messages=QUESTION, tools=tools, tool_timeout=0.3)
            return [event async for event in to_async_iterator(arun)]

    release.clear()
    cancelled.clear()
    async_events = asyncio.run(main())
    release.set()
    assert {e.name: e.error for e in async_events if isinstance(e, ToolResultEvent)} == errors
    assert cancelled.is_set()


# --------------------------------------------------------------------------- the conversation


def test_the_final_conversation_replays_through_chat_stream_as_valid_cohere_messages(
    offline_server: ScriptedServer,
) -> None:
    import cohere

    recorder = Recorder()
    with client_for(offline_server) as client:
        run = run_tools(client, model=MODEL, messages=QUESTION, tools=weather_tools(recorder, 0.0))
        end = final(list(to_iterator(run)))
        messages = [*end.messages, {"role": "user", "content": "And tomorrow?"}]
        # The offline backend checks the conversation as the API does (a 400 otherwise) ...
        reply = client.chat_stream(model=MODEL, messages=messages).final_message()
        assert reply.finish_reason == "COMPLETE"
        # ... and does reject a broken one: tool results with no assistant call before them.
        broken = [m for m in messages if m["role"] != "assistant"]
        with pytest.raises(BadRequestError, match="answers no tool call"):
            client.chat_stream(model=MODEL, messages=broken).final_message()
    # The official SDK's message types accept every message too.
    adapter = pydantic.TypeAdapter(list[cohere.ChatMessageV2])
    typed = adapter.validate_python(messages)
    assert [m.role for m in typed] == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assistant = messages[1]
    assert assistant["tool_plan"].startswith("I will call get_weather and get_time")
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["get_weather", "get_time"]


def test_a_run_continues_from_a_conversation_that_ends_with_tool_results() -> None:
    def lookup(query: str) -> dict[str, str]:
        """Look something up."""
        return {"found": query}

    with ScriptedServer(default=looping_answer) as server, client_for(server) as client:
        run = run_tools(client, model=MODEL, messages=QUESTION, tools=[lookup], max_steps=1)
        stopped = final(list(to_iterator(run)))
    assert stopped.stop_reason == "max_steps"
    with Client.offline() as client:
        resumed = run_tools(client, model=MODEL, messages=stopped.messages, tools=[lookup])
        answer = final(list(to_iterator(resumed)))
    assert answer.stop_reason == "answered" and answer.step == 1
    assert "the found is round 1" in answer.response.text


# --------------------------------------------------------------------------- operators on a run


def test_final_message_and_text_operators_work_on_a_run() -> None:
    recorder = Recorder()
    with Client.offline() as client:
        run = run_tools(client, model=MODEL, messages=QUESTION, tools=weather_tools(recorder, 0))
        reply = run.pipe(final_message()).run()
        text = "".join(run.pipe(text_only(), ops.to_list()).run())
        citations = run.pipe(pair_citations(), ops.to_list()).run()
    assert reply.finish_reason == "COMPLETE"
    assert reply.text == text  # the tool-calling step has no text: the answer is all of it
    assert "According to get_weather" in reply.text
    assert citations and all(c.matches_text for c in citations)


def test_a_failing_step_fails_the_run_with_the_client_error() -> None:
    with ScriptedServer() as server, client_for(server) as client:
        server.enqueue(offline_answer, json_response(400, {"message": "no more"}))

        def get_weather(city: str) -> str:
            """Weather."""
            return city

        run = run_tools(client, model=MODEL, messages=QUESTION, tools=[get_weather])
        seen: list[RunEvent] = []
        with pytest.raises(BadRequestError, match="no more"):
            for event in to_iterator(run):
                seen.append(event)
    assert isinstance(seen[-1], StepEndEvent) and seen[-1].step == 1


def test_bad_arguments_to_run_tools_fail_at_once() -> None:
    def f(*values: int) -> int:
        return sum(values)

    with Client.offline() as client:
        with pytest.raises(ValueError, match="max_steps"):
            run_tools(client, model=MODEL, messages=QUESTION, tools=[], max_steps=0)
        with pytest.raises(ValueError, match="stream"):
            run_tools(client, model=MODEL, messages=QUESTION, tools=[], stream=False)
        with pytest.raises(ToolDefinitionError, match=r"\*args"):
            run_tools(client, model=MODEL, messages=QUESTION, tools=[f])


def test_typed_sdk_messages_start_a_run_and_the_conversation_is_plain_json() -> None:
    import cohere

    def get_weather(city: str) -> str:
        """Weather."""
        return f"mild in {city}"

    start = [cohere.UserChatMessageV2(content="What is the weather in Oslo?")]
    with Client.offline() as client:
        run = run_tools(client, model=MODEL, messages=start, tools=[get_weather])
        end = final(list(to_iterator(run)))
    assert end.messages[0] == {"role": "user", "content": "What is the weather in Oslo?"}
    assert json.loads(json.dumps(end.messages)) == end.messages
    assert "mild in Oslo" in end.response.text
