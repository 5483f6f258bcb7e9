"""The live display of a tool run: each step under a header, its calls, then their results."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from reactivex import Observable

import streamkit._display as display_module
from streamkit import (
    Client,
    OfflineServer,
    RunEvent,
    StepEndEvent,
    ToolResultEvent,
    render_html,
    render_text,
    run_tools,
    to_iterator,
)

QUESTION = [{"role": "user", "content": "Weather in <Paris>?"}]


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"forecast": f"sunny in {city}"}


def get_time(city: str) -> str:
    """The time in a city."""
    raise LookupError(f"no clock in {city}")


@pytest.fixture
def run(offline: OfflineServer) -> Iterator[Observable[RunEvent]]:
    with Client("key", base_url=offline.base_url) as client:
        yield run_tools(
            client, model="command-a-03-2025", messages=QUESTION, tools=[get_weather, get_time]
        )


class FakeHandle:
    def __init__(self) -> None:
        self.updates: list[Any] = []

    def update(self, obj: Any) -> None:
        self.updates.append(obj)


def test_outside_jupyter_a_run_prints_each_step_with_its_results(run: Observable[RunEvent]) -> None:
    out = io.StringIO()
    reply = display_module.display_stream(run, file=out)
    printed = out.getvalue()
    step_1, step_2 = printed.split("── Step 2\n")
    assert step_1.startswith("── Step 1\nPlan: I will call get_weather and get_time")
    assert 'Tool call 0: get_weather({"city": "Paris"})' in step_1
    assert "— finish TOOL_CALL" in step_1
    assert "Result of get_weather [get_weather_" in step_1
    assert ']: {"forecast": "sunny in Paris"}' in step_1
    assert "Error from get_time [get_time_" in step_1 and "LookupError: no clock in" in step_1
    assert step_2.startswith("Here is what the tools returned")
    assert "— finish COMPLETE" in step_2
    # The reply returned is the last step's: the answer.
    assert reply.finish_reason == "COMPLETE" and reply.text in step_2.replace("[1]", "").replace(
        "[2]", ""
    )


def test_in_jupyter_a_run_shows_its_steps_live_and_escaped(run: Observable[RunEvent]) -> None:
    handle = FakeHandle()
    display_module.display_stream(run, handle=handle, interval=0.0)
    page = handle.updates[-1]._repr_html_()
    assert page.index("<b>Step 1</b>") < page.index("<b>Step 2</b>")
    assert "<code>get_weather</code>" in page and "error in" in page
    assert "<Paris>" not in page and "&lt;Paris&gt;" in page
    frames = [repr(update) for update in handle.updates]
    # The first step has its header from the start; its results come before step 2's.
    assert frames[0].startswith("── Step 1\n") and "waiting for the first token" not in frames[0]
    first_result = next(i for i, f in enumerate(frames) if "Result of get_weather" in f)
    assert "── Step 2" not in frames[first_result]
    assert "── Step 2" in frames[-1]


def test_in_terminal_ipython_a_run_types_headers_and_results(
    run: Observable[RunEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(display_module, "_in_terminal_ipython", lambda: True)
    out = io.StringIO()
    display_module.display_stream(run, file=out)
    printed = out.getvalue()
    before, after = printed.split("── Step 2\n")
    assert before.startswith("── Step 1\nPlan: I will call get_weather and get_time")
    assert "Result of get_weather" in before and "Error from get_time" in before
    assert after.startswith("Here is what the tools returned")


def test_run_events_render_as_text_and_html(run: Observable[RunEvent]) -> None:
    events = list(to_iterator(run))
    result = next(e for e in events if isinstance(e, ToolResultEvent) and e.is_error)
    assert render_text(result).startswith(f"Error from get_time [{result.tool_call_id}]: Lookup")
    assert "LookupError" in (render_html(result) or "")
    end = events[-1]
    assert isinstance(end, StepEndEvent)
    assert render_text(end) == "step 2 ended · 0 tool results · stopped: answered"
    assert "step-end" in (render_html(end) or "")


def test_ending_an_ipython_cell_with_a_run_displays_it_live(
    run: Observable[RunEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core import displaypub
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        display_module.load_ipython_extension(shell)
        formatter: Any = shell.display_formatter  # IPython's formatters are untyped
        publisher_class: Any = displaypub.CapturingDisplayPublisher
        publisher = publisher_class()
        monkeypatch.setattr(shell, "display_pub", publisher)
        monkeypatch.setattr(display_module, "_kernel_shell", lambda: shell)
        formatter.format(run)
        final_html = publisher.outputs[-1]["data"]["text/html"]
        assert "<b>Step 1</b>" in final_html and "<b>Step 2</b>" in final_html
        assert "Here is what the tools returned" in final_html
    finally:
        InteractiveShell.clear_instance()
