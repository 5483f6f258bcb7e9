"""The tool runner: stream a step, run the tools it called, send their results, repeat.

One place decides, two drivers do the I/O. :class:`_Conversation` is the sans-IO core: it
holds the messages, turns each step's reply into the assistant message and the tool
calls to run, turns the outcomes into ``tool`` messages, and decides whether the run goes
on (it knows nothing of threads, loops or sockets). :func:`_drive_sync` runs it for a
:class:`~streamkit.Client` on a thread of its own; :func:`_drive_async` for an
:class:`~streamkit.AsyncClient` as a task on the caller's loop.

Where tools run:

* ``AsyncClient``: async tools as tasks on the caller's loop; sync tools each on a daemon
  thread of their own.
* ``Client``: sync tools each on a daemon thread of their own; async tools on a private
  event loop the run starts on a daemon thread when it first needs one (and stops at its
  end).

A step's calls all start at once and run concurrently. Stopping a run (disposing the
subscription, or leaving a ``to_iterator``/``to_async_iterator`` loop) closes the step's
response, cancels the running async tools (they see ``asyncio.CancelledError``), and sends
no further request. A sync tool's thread cannot be stopped from outside: it runs on, and
its result is discarded. The per-tool timeout works the same way: an async tool is
cancelled, a sync tool's result is dropped when it comes; either way the model is told the
call timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from streamkit._accumulate import MessageAccumulator
from streamkit._client import AsyncClient, Client
from streamkit._message import ChatResponse
from streamkit._request import to_jsonable
from streamkit._run_events import RunEvent, StepEndEvent, StopReason, ToolResultEvent
from streamkit._stream import Cancellation, cancel_task, loop_for
from streamkit._tools import Tool, as_tools, jsonable_result, tool_message
from streamkit.errors import ToolError

__all__ = ["ToolRun", "run_tools"]

_Subscribe = Callable[[abc.ObserverBase[RunEvent], abc.SchedulerBase | None], abc.DisposableBase]

DEFAULT_MAX_STEPS = 10
"""How many model replies a run asks for at most, unless told otherwise."""


class ToolRun(Observable[RunEvent]):
    """The cold Observable :func:`run_tools` returns: a tool run's events, step by step.

    An ``Observable[RunEvent]`` like any other; its own type lets
    :func:`~streamkit.display_stream` show the first step's header before it ends.
    """

    def __init__(
        self,
        subscribe: _Subscribe,
        description: str,
    ) -> None:
        super().__init__(subscribe)
        self._description = description

    def __repr__(self) -> str:
        return f"<ToolRun {self._description}>"


def run_tools(
    client: Client | AsyncClient,
    *,
    model: str,
    messages: Sequence[Any],
    tools: Iterable[Tool | Callable[..., Any]],
    max_steps: int = DEFAULT_MAX_STEPS,
    tool_timeout: float | None = None,
    **options: Any,
) -> ToolRun:
    """Stream a conversation in which the model calls tools until it answers.

    Each step streams one reply with ``client.chat_stream``; if the reply calls tools,
    they run (concurrently), their results go back as ``tool`` messages, and the next step
    streams the model's next reply. The Observable emits each step's chat events, a
    :class:`~streamkit.ToolResultEvent` as each call finishes, and a
    :class:`~streamkit.StepEndEvent` at the end of each step; the last one has a
    ``stop_reason`` (``"answered"`` or ``"max_steps"``) and the whole conversation in
    ``messages``. Then it completes.

    A call whose arguments do not validate, that names no tool, raises, times out or
    returns something that is not JSON gets an error result, which the model reads in
    the next step: the run goes on. A failed request or stream fails the run with the
    client's typed error.

    The run is cold: each subscription runs its own conversation. With a
    :class:`~streamkit.Client` it runs on a daemon thread; with an
    :class:`~streamkit.AsyncClient` as a task on the running asyncio loop (subscribe
    from a coroutine, or iterate it with :func:`~streamkit.to_async_iterator`).
    Disposing the subscription stops it: the open response is closed, async tools are
    cancelled, no further request is sent; sync tools run on in their threads, but their
    results are discarded.

    ``final_message()`` on a run gives the last step's reply (the answer); the other
    operators see every step's events.

    Marble::

        -a-b-c-r-s-x-y-z-t-|     a, b, c: step 1 (tool calls); r: a tool result;
                                 s: step 1's end; x, y, z: step 2 (the answer);
                                 t: the last step's end, with its stop_reason

    Example:
        >>> from streamkit import Client, StepEndEvent, run_tools, to_iterator
        >>> def get_weather(city: str) -> dict[str, object]:
        ...     '''Today's weather in a city.
        ...
        ...     Args:
        ...         city: The city's name.
        ...     '''
        ...     return {"forecast": f"sunny in {city}"}
        >>> with Client.offline() as client:
        ...     run = run_tools(client, model="command-a-03-2025",
        ...                     messages=[{"role": "user", "content": "Weather in Paris?"}],
        ...                     tools=[get_weather])
        ...     events = list(to_iterator(run))
        >>> [e.type for e in events if not e.type.startswith(("content", "tool-"))]
        ['message-start', 'message-end', 'step-end', 'message-start', 'citation-start', \
'citation-end', 'message-end', 'step-end']
        >>> last = events[-1]
        >>> last.stop_reason, [m["role"] for m in last.messages]
        ('answered', ['user', 'assistant', 'tool', 'assistant'])
        >>> last.response.text
        'Here is what the tools returned for "Weather in Paris?". According to get_weather, \
the forecast is sunny in Paris.'

    Args:
        client: A :class:`~streamkit.Client` (the run is an ``Observable`` that runs on a
            thread) or an :class:`~streamkit.AsyncClient` (it runs on the asyncio loop).
        model: The model, as for ``chat_stream``.
        messages: The conversation so far (dicts or the official SDK's typed messages).
        tools: The tools: :class:`~streamkit.Tool` objects or plain functions (described
            by :meth:`~streamkit.Tool.from_function`).
        max_steps: The most replies to ask the model for (at least 1).
        tool_timeout: Seconds a tool call may take, for tools without their own
            ``timeout``; None for no limit.
        **options: Any other ``chat_stream`` argument (``temperature``, ``documents``,
            ``request_options``, ...), sent with every step.

    Returns:
        A :class:`ToolRun`: an ``Observable[RunEvent]``.

    Raises:
        ToolDefinitionError: If a tool cannot be described (raised here, not on subscribe).
        ValueError: If ``max_steps`` is below 1, ``tool_timeout`` not positive, or
            ``options`` holds ``tools`` or ``stream``.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    if tool_timeout is not None and not tool_timeout > 0:
        raise ValueError("tool_timeout must be positive (or None for no limit)")
    clash = {"tools", "messages", "stream"} & set(options)
    if clash:
        raise ValueError(f"run_tools sets {', '.join(sorted(clash))} itself")
    by_name = as_tools(tools)
    start = [to_jsonable(message) for message in messages]

    def conversation() -> _Conversation:
        return _Conversation(start, by_name, max_steps, tool_timeout)

    def request(conv: _Conversation) -> dict[str, Any]:
        return {
            **options,
            "model": model,
            "messages": conv.request_messages(),
            "tools": conv.params,
        }

    description = f"model={model!r} tools={list(by_name)} max_steps={max_steps}"
    if isinstance(client, AsyncClient):
        return ToolRun(_async_run(client, conversation, request), description)
    return ToolRun(_sync_run(client, conversation, request), description)


# ----------------------------------------------------------------------------- the core


@dataclass(frozen=True)
class _Call:
    """One tool call of a step, ready to run (or already failed)."""

    index: int
    tool_call_id: str
    name: str
    arguments: str
    tool: Tool | None
    kwargs: dict[str, Any] | None
    error: str | None
    timeout: float | None


class _Conversation:
    """The run's state and every decision in it; no I/O, no threads, no clock."""

    def __init__(
        self,
        messages: list[Any],
        tools: Mapping[str, Tool],
        max_steps: int,
        tool_timeout: float | None,
    ) -> None:
        self.messages: list[dict[str, Any]] = list(messages)
        self.tools = tools
        self.params = [t.to_param() for t in tools.values()]
        self.max_steps = max_steps
        self.tool_timeout = tool_timeout
        self.step = 0
        self._response = ChatResponse()
        self._results: dict[int, ToolResultEvent] = {}

    def request_messages(self) -> list[dict[str, Any]]:
        """Start the next step; return the messages its request sends."""
        self.step += 1
        self._results = {}
        return list(self.messages)

    def reply(self, response: ChatResponse) -> list[_Call]:
        """Record the step's reply; return the tool calls to run (none: the run is done)."""
        self._response = response
        message = response.message
        assistant: dict[str, Any] = {"role": "assistant"}
        if message.content:
            assistant["content"] = [item.model_dump(mode="json") for item in message.content]
        calls = message.tool_calls or []
        if calls:
            if message.tool_plan:
                assistant["tool_plan"] = message.tool_plan
            assistant["tool_calls"] = [call.model_dump(mode="json") for call in calls]
        elif "content" not in assistant:
            assistant["content"] = ""  # an empty answer is still the assistant's turn
        self.messages.append(assistant)
        return [
            self._prepare(i, call.id, call.function.name, call.function.arguments)
            for i, call in enumerate(calls)
        ]

    def _prepare(self, index: int, call_id: str, name: str, arguments: str) -> _Call:
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            error = f"there is no tool named {name!r} (the tools are: {known})"
            return _Call(index, call_id, name, arguments, None, None, error, None)
        try:
            kwargs = tool.validate(arguments)
        except ToolError as problem:
            return _Call(index, call_id, name, arguments, tool, None, str(problem), None)
        timeout = tool.timeout if tool.timeout is not None else self.tool_timeout
        return _Call(index, call_id, name, arguments, tool, kwargs, None, timeout)

    def result(
        self, call: _Call, value: Any, error: str | None, duration: float
    ) -> ToolResultEvent:
        """Record one call's outcome (its return value, or why it failed)."""
        if error is None:
            try:
                value = jsonable_result(value)
            except ToolError as problem:
                value, error = None, str(problem)
        event = ToolResultEvent(
            step=self.step,
            tool_call_id=call.tool_call_id,
            name=call.name,
            arguments=call.arguments,
            result=None if error is not None else value,
            error=error,
            duration=duration,
        )
        self._results[call.index] = event
        return event

    def end_step(self) -> StepEndEvent:
        """Close the step: add the tool messages, in call order; say whether to go on."""
        results = tuple(self._results[i] for i in sorted(self._results))
        for event in results:
            self.messages.append(tool_message(event.tool_call_id, event.result, event.error))
        stop: StopReason | None = None
        if not self._response.message.tool_calls:
            stop = "answered"
        elif self.step >= self.max_steps:
            stop = "max_steps"
        return StepEndEvent(
            step=self.step,
            response=self._response,
            tool_results=results,
            messages=[dict(m) for m in self.messages],
            stop_reason=stop,
        )


def _describe(error: BaseException) -> str:
    if isinstance(error, ToolError):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _timed_out(timeout: float) -> str:
    return f"the tool did not finish within {timeout:g} seconds"


# ----------------------------------------------------------------------------- sync driver


class _Stop:
    """What a sync run's dispose needs to reach: the open response and the running tools."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.cancellation: Cancellation | None = None
        self.wake: queue.SimpleQueue[Any] | None = None
        self.futures: list[Any] = []
        self._lock = threading.Lock()

    def track(self, future: Any) -> None:
        """Keep an async tool's future to cancel on stop (at once, if stopped already)."""
        with self._lock:
            self.futures.append(future)
            if self.stopped.is_set():
                future.cancel()

    def stop(self) -> None:
        with self._lock:
            self.stopped.set()
            if self.cancellation is not None:
                self.cancellation.cancel()
            for future in self.futures:
                future.cancel()
            if self.wake is not None:
                self.wake.put(None)


_DRAIN_SECONDS = 5.0
"""How long a stopping sync run waits for its cancelled async tools to finish."""


class _PrivateLoop:
    """An event loop on a daemon thread, for the async tools of a sync run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="streamkit-tools-loop", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Cancel the tools still running, let them handle it, then stop the loop."""

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        drained = asyncio.run_coroutine_threadsafe(drain(), self.loop)
        with contextlib.suppress(Exception):  # a tool that ignores cancellation: give up
            drained.result(_DRAIN_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(_DRAIN_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()


def _sync_run(
    client: Client,
    conversation: Callable[[], _Conversation],
    request: Callable[[_Conversation], dict[str, Any]],
) -> _Subscribe:
    def subscribe(
        observer: abc.ObserverBase[RunEvent], _: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        stop = _Stop()
        thread = threading.Thread(
            target=_drive_sync,
            args=(client, conversation(), request, observer, stop),
            name="streamkit-tools",
            daemon=True,
        )
        thread.start()
        return Disposable(stop.stop)

    return subscribe


def _drive_sync(
    client: Client,
    conv: _Conversation,
    request: Callable[[_Conversation], dict[str, Any]],
    observer: abc.ObserverBase[RunEvent],
    stop: _Stop,
) -> None:
    private: _PrivateLoop | None = None
    failure: Exception | None = None
    try:
        while not stop.stopped.is_set():
            stream = client.chat_stream(**request(conv))
            cancellation = Cancellation()
            stop.cancellation = cancellation
            if stop.stopped.is_set():
                return
            accumulator = MessageAccumulator()
            events = stream.iterate(cancellation)
            try:
                for event in events:
                    if stop.stopped.is_set():
                        return
                    accumulator.add(event)
                    observer.on_next(event)
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
            if stop.stopped.is_set():
                return
            calls = conv.reply(accumulator.snapshot())
            if calls and any(
                c.tool is not None and c.tool.is_async for c in calls if c.kwargs is not None
            ):
                private = private or _PrivateLoop()
            for result in _run_calls_sync(conv, calls, stop, private):
                observer.on_next(result)
            if stop.stopped.is_set():
                return
            end = conv.end_step()
            observer.on_next(end)
            if end.is_final:
                break
    except Exception as error:  # a failed step, or an observer that raised
        failure = error
    finally:
        if private is not None:
            private.close()
    if stop.stopped.is_set():
        return
    if failure is not None:
        observer.on_error(failure)
    else:
        observer.on_completed()


def _run_calls_sync(
    conv: _Conversation, calls: list[_Call], stop: _Stop, private: _PrivateLoop | None
) -> Iterable[ToolResultEvent]:
    """Start every call at once; yield each result as it comes (or times out)."""
    done: queue.SimpleQueue[tuple[_Call, Any, str | None, float] | None] = queue.SimpleQueue()
    stop.wake = done
    started: dict[int, float] = {}
    pending: dict[int, _Call] = {}
    for call in calls:
        started[call.index] = time.monotonic()
        if call.error is not None or call.tool is None or call.kwargs is None:
            done.put((call, None, call.error, 0.0))
            pending[call.index] = call
            continue
        pending[call.index] = call
        if call.tool.is_async:
            assert private is not None
            future = asyncio.run_coroutine_threadsafe(
                _call_async(call.tool.function, call.kwargs, call.timeout), private.loop
            )
            stop.track(future)
            future.add_done_callback(_report_future(call, started[call.index], done))
        else:
            threading.Thread(
                target=_call_in_thread,
                args=(call, started[call.index], done),
                name=f"streamkit-tool-{call.name}",
                daemon=True,
            ).start()
    while pending and not stop.stopped.is_set():
        now = time.monotonic()
        deadlines = [
            started[c.index] + c.timeout - now for c in pending.values() if c.timeout is not None
        ]
        wait = max(0.0, min(deadlines)) if deadlines else None
        try:
            item = done.get(timeout=wait)
        except queue.Empty:
            item = None
            now = time.monotonic()
            for call in list(pending.values()):
                if call.timeout is not None and now - started[call.index] >= call.timeout:
                    del pending[call.index]
                    yield conv.result(
                        call, None, _timed_out(call.timeout), now - started[call.index]
                    )
            continue
        if item is None or stop.stopped.is_set():
            continue
        call, value, error, duration = item
        if pending.pop(call.index, None) is not None:
            yield conv.result(call, value, error, duration)
    stop.futures.clear()


def _call_in_thread(
    call: _Call,
    started: float,
    done: queue.SimpleQueue[tuple[_Call, Any, str | None, float] | None],
) -> None:
    assert call.tool is not None and call.kwargs is not None
    try:
        value, error = call.tool.function(**call.kwargs), None
    except Exception as raised:
        value, error = None, _describe(raised)
    done.put((call, value, error, time.monotonic() - started))


def _report_future(
    call: _Call,
    started: float,
    done: queue.SimpleQueue[tuple[_Call, Any, str | None, float] | None],
) -> Callable[[Any], None]:
    def report(future: Any) -> None:
        if future.cancelled():
            return
        value, error = future.result()
        done.put((call, value, error, time.monotonic() - started))

    return report


async def _call_async(
    function: Callable[..., Awaitable[Any]], kwargs: dict[str, Any], timeout: float | None
) -> tuple[Any, str | None]:
    """Await an async tool; a raise or a timeout becomes the error text."""
    try:
        return await asyncio.wait_for(function(**kwargs), timeout), None
    except asyncio.TimeoutError:
        assert timeout is not None
        return None, _timed_out(timeout)
    except Exception as raised:
        return None, _describe(raised)


# ----------------------------------------------------------------------------- async driver


def _async_run(
    client: AsyncClient,
    conversation: Callable[[], _Conversation],
    request: Callable[[_Conversation], dict[str, Any]],
) -> _Subscribe:
    def subscribe(
        observer: abc.ObserverBase[RunEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        loop = loop_for(scheduler)
        disposed = False

        def emit(event: RunEvent) -> None:
            if not disposed:
                observer.on_next(event)

        async def run() -> None:
            try:
                await _drive_async(client, conversation(), request, emit)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not disposed:
                    observer.on_error(error)
                return
            if not disposed:
                observer.on_completed()

        task = loop.create_task(run(), name="streamkit-tools")

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            cancel_task(loop, task)

        return Disposable(dispose)

    return subscribe


async def _drive_async(
    client: AsyncClient,
    conv: _Conversation,
    request: Callable[[_Conversation], dict[str, Any]],
    emit: Callable[[RunEvent], None],
) -> None:
    while True:
        stream = client.chat_stream(**request(conv))
        accumulator = MessageAccumulator()
        events = stream.aiterate()
        try:
            async for event in events:
                accumulator.add(event)
                emit(event)
        finally:
            aclose: Callable[[], Awaitable[object]] | None = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        calls = conv.reply(accumulator.snapshot())
        await _run_calls_async(conv, calls, emit)
        end = conv.end_step()
        emit(end)
        if end.is_final:
            return


async def _run_calls_async(
    conv: _Conversation, calls: list[_Call], emit: Callable[[RunEvent], None]
) -> None:
    """Run a step's calls concurrently on this loop; emit each result as it comes."""
    loop = asyncio.get_running_loop()

    async def one(call: _Call) -> tuple[_Call, Any, str | None, float]:
        started = loop.time()
        if call.error is not None or call.tool is None or call.kwargs is None:
            return call, None, call.error, 0.0
        if call.tool.is_async:
            value, error = await _call_async(call.tool.function, call.kwargs, call.timeout)
        else:
            value, error = await _thread_call(loop, call.tool.function, call.kwargs, call.timeout)
        return call, value, error, loop.time() - started

    tasks = [loop.create_task(one(call)) for call in calls]
    try:
        for next_done in asyncio.as_completed(tasks):
            call, value, error, duration = await next_done
            emit(conv.result(call, value, error, duration))
    finally:
        for task in tasks:
            task.cancel()
        # Let the cancelled tools run their cleanup before the run ends.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


async def _thread_call(
    loop: asyncio.AbstractEventLoop,
    function: Callable[..., Any],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> tuple[Any, str | None]:
    """Run a sync tool on a daemon thread (a hung tool must not hold the loop's shutdown)."""
    future: asyncio.Future[tuple[Any, str | None]] = loop.create_future()

    def settle(outcome: tuple[Any, str | None]) -> None:
        if not future.done():
            future.set_result(outcome)

    def work() -> None:
        try:
            outcome: tuple[Any, str | None] = (function(**kwargs), None)
        except Exception as raised:
            outcome = (None, _describe(raised))
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=work, name="streamkit-tool", daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        assert timeout is not None
        return None, _timed_out(timeout)
