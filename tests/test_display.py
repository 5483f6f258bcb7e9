"""The live display and the reprs: what people see of a stream in Jupyter and in a terminal."""

from __future__ import annotations

import asyncio
import codecs
import html
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reactivex

import streamkit._display as display_module
from operators import assemble_tool_calls, pair_citations
from streamkit import (
    CHAT_EVENT_ADAPTER,
    AsyncClient,
    ChatEvent,
    ChatResponse,
    Client,
    MessageAccumulator,
    OfflineServer,
    TextContent,
    ThinkingContent,
    adisplay_stream,
    from_events,
    from_sse_file,
    load_ipython_extension,
    read_recording,
    render_html,
    render_text,
    to_iterator,
)
from streamkit.errors import ServerStreamError

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent

# A turn with everything the view shows: a tool plan, two tool calls whose arguments arrive
# in fragments, an answer with three citations (a document, a tool result, and one span
# cited by both) and HTML-looking text that must come out escaped.
TEXT = 'Paris is sunny at 18 degrees <script>alert("x")</script> & Tokyo has rain.'
SPANS = [(0, 5, ["doc:0"]), (18, 28, ["doc:0", "get_weather_1:0"]), (60, 65, ["get_weather_2:0"])]
SOURCES = {
    "doc:0": {"type": "document", "id": "doc:0", "document": {"id": "doc:0", "title": "<Cities>"}},
    "get_weather_1:0": {
        "type": "tool",
        "id": "get_weather_1:0",
        "tool_output": {"city": "Paris", "temperature": 18},
    },
    "get_weather_2:0": {
        "type": "tool",
        "id": "get_weather_2:0",
        "tool_output": {"city": "Tokyo", "sky": "rain"},
    },
}
CALLS = [
    ("get_weather_1", "get_weather", ['{"city"', ': "Par', 'is"}']),
    ("get_time", "get_time", []),  # a call without arguments sends no delta (§3)
]


def wire_events() -> list[dict[str, Any]]:
    def message(**fields: Any) -> dict[str, Any]:
        return {"message": fields}

    events: list[dict[str, Any]] = [
        {"type": "message-start", "id": "m-1", "delta": message(role="assistant")},
    ]
    for piece in ["I will ", "look up ", "the <weather>."]:
        events.append({"type": "tool-plan-delta", "delta": message(tool_plan=piece)})
    for i, (call_id, name, fragments) in enumerate(CALLS):
        function = {"name": name, "arguments": ""}
        start = {"id": call_id, "type": "function", "function": function}
        events.append({"type": "tool-call-start", "index": i, "delta": message(tool_calls=start)})
        for fragment in fragments:
            delta = message(tool_calls={"function": {"arguments": fragment}})
            events.append({"type": "tool-call-delta", "index": i, "delta": delta})
        events.append({"type": "tool-call-end", "index": i})
    content = {"type": "text", "text": ""}
    events.append({"type": "content-start", "index": 0, "delta": message(content=content)})
    for piece in re.findall(r"\S+\s*|\s+", TEXT):
        delta = message(content={"text": piece})
        events.append({"type": "content-delta", "index": 0, "delta": delta})
    for n, (start_at, end_at, ids) in enumerate(SPANS):
        citation = {
            "start": start_at,
            "end": end_at,
            "text": TEXT[start_at:end_at],
            "sources": [SOURCES[i] for i in ids],
            "type": "TEXT_CONTENT",
        }
        events.append({"type": "citation-start", "index": n, "delta": message(citations=citation)})
        events.append({"type": "citation-end", "index": n})
    events.append({"type": "content-end", "index": 0})
    usage = {
        "billed_units": {"input_tokens": 9, "output_tokens": 21},
        "tokens": {"input_tokens": 215, "output_tokens": 21},
    }
    events.append({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}})
    return events


def tools_and_citations() -> list[ChatEvent]:
    return [CHAT_EVENT_ADAPTER.validate_python(e) for e in wire_events()]


def final(events: list[ChatEvent]) -> ChatResponse:
    accumulator = MessageAccumulator()
    for event in events:
        accumulator.add(event)
    return accumulator.snapshot()


class FakeHandle:
    """Stands in for IPython's DisplayHandle: keeps every object it is updated with."""

    def __init__(self) -> None:
        self.updates: list[Any] = []

    def update(self, obj: Any) -> None:
        self.updates.append(obj)


def capturing_publisher() -> Any:
    """An IPython display publisher that keeps what it is given (untyped upstream)."""
    from IPython.core import displaypub

    publisher_class: Any = displaypub.CapturingDisplayPublisher
    return publisher_class()


class StepClock:
    """A clock that advances one second each time it is read: every event is a new second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def visible_text(fragment: str, *, marks: bool = True) -> str:
    """The text a browser shows: tags dropped, entities decoded (and source marks, if asked)."""
    if not marks:
        fragment = re.sub(r"<sup>.*?</sup>", "", fragment)
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def check_final_html(page: str, *, timing: bool = True) -> None:
    # The text, every cited span marked, and the script tag escaped, never live.
    assert "<script>" not in page and "&lt;script&gt;" in page
    marked = [html.unescape(m) for m in re.findall(r"<mark[^>]*>(.*?)</mark>", page)]
    for start, end, _ in SPANS:
        assert TEXT[start:end] in "".join(marked)
    assert TEXT in visible_text(page, marks=False)
    # Each source listed once, numbered in order of first citation, and cited by number.
    assert visible_text(page).count("[1] document doc:0") == 1
    assert "[2] tool get_weather_1:0" in visible_text(page)
    assert "[3] tool get_weather_2:0" in visible_text(page)
    assert "<sup>[1]</sup>" in page and "<sup>[1,2]</sup>" in page and "<sup>[3]</sup>" in page
    # Every tool call, with its whole arguments; the plan.
    assert "<code>get_weather</code>" in page and "<code>get_time</code>" in page
    assert "&quot;city&quot;: &quot;Paris&quot;" in page
    assert "I will look up the &lt;weather&gt;." in page
    # The footer.
    footer = visible_text(page)
    assert "finish COMPLETE" in footer
    assert "tokens in 215 / out 21" in footer and "billed in 9 / out 21" in footer
    assert ("first token" in footer and "tokens/s" in footer) is timing
    assert "▌" not in page and "receiving arguments" not in page


# ----------------------------------------------------------------------------- live display


def test_the_live_display_ends_holding_the_text_every_citation_and_every_tool_call() -> None:
    events = tools_and_citations()
    handle = FakeHandle()
    reply = display_module.display_stream(
        from_events(events), handle=handle, interval=0.0, clock=StepClock()
    )
    assert reply == final(events)
    assert len(handle.updates) == len(events) + 1  # interval 0: every event, then the end
    check_final_html(handle.updates[-1]._repr_html_())
    # The plain-text frame says the same for frontends without HTML.
    text = repr(handle.updates[-1])
    assert "Paris[1] is sunny at 18 degrees[1,2]" in text
    assert 'Tool call 0: get_weather({"city": "Paris"})  [get_weather_1]' in text
    assert "Tool call 1: get_time({})  [get_time]" in text


def test_the_live_display_shows_progress_while_the_stream_is_open() -> None:
    events = tools_and_citations()
    handle = FakeHandle()
    display_module.display_stream(
        from_events(events), handle=handle, interval=0.0, clock=StepClock()
    )
    frames = [update._repr_html_() for update in handle.updates]
    first_delta = next(i for i, e in enumerate(events) if e.type == "tool-call-delta")
    # While the first call's arguments arrive they show raw, with a cursor.
    assert "receiving arguments" in frames[first_delta]
    assert "{&quot;city&quot;▌" in frames[first_delta]
    assert "waiting for the first token" in frames[0]
    assert all("streaming…" in frame for frame in frames[:-1])
    # The text grows with each delta, the cursor at its end.
    so_far = ""
    for event, frame in zip(events, frames, strict=False):
        if event.type == "content-delta":
            so_far += getattr(event, "text", "")
            assert html.escape(so_far) + "▌" in frame


def test_updates_are_throttled_to_the_interval_and_the_final_state_always_shows() -> None:
    events = tools_and_citations()
    handle = FakeHandle()
    display_module.display_stream(from_events(events), handle=handle, interval=3600.0)
    assert len(handle.updates) == 1
    check_final_html(handle.updates[0]._repr_html_())


def test_a_failing_stream_shows_the_error_in_the_footer_and_raises() -> None:
    handle = FakeHandle()
    with pytest.raises(ServerStreamError):
        display_module.display_stream(
            from_sse_file(FIXTURES / "error_mid_stream.sse"), handle=handle
        )
    page = handle.updates[-1]._repr_html_()
    assert "ServerStreamError" in page and "INVALID_TOOL_GENERATION" in page


def test_thinking_is_a_collapsible_block_open_only_while_thinking() -> None:
    handle = FakeHandle()
    events = list(to_iterator(from_sse_file(FIXTURES / "thinking_text.sse")))
    display_module.display_stream(from_events(events), handle=handle, interval=0.0)
    frames = [update._repr_html_() for update in handle.updates]
    thinking_frames = [f for f in frames if "<details" in f]
    assert thinking_frames and "<details open>" in thinking_frames[0]
    assert "<details><summary>Thinking" in frames[-1]


def test_the_async_twin_shows_an_async_clients_stream(offline: OfflineServer) -> None:
    async def main() -> tuple[ChatResponse, FakeHandle]:
        handle = FakeHandle()
        async with AsyncClient("key", base_url=offline.base_url) as client:
            stream = client.chat_stream(
                model="command-a-03-2025",
                messages=[{"role": "user", "content": "Tell me about Paris"}],
                documents=["Paris is the capital of France."],
            )
            reply = await adisplay_stream(stream, handle=handle, interval=0.0)
        return reply, handle

    reply, handle = asyncio.run(main())
    page = handle.updates[-1]._repr_html_()
    assert reply.finish_reason == "COMPLETE"
    assert "<mark" in page and "Paris is the capital of France" in page
    assert len(handle.updates) > 10


def test_outside_jupyter_the_reply_is_printed_once_complete() -> None:
    out = io.StringIO()
    events = tools_and_citations()
    reply = display_module.display_stream(from_events(events), file=out)
    assert reply == final(events)
    printed = out.getvalue()
    assert printed.startswith("Plan: I will look up the <weather>.\nTool call 0: get_weather(")
    assert "\nParis[1] is sunny at 18 degrees[1,2] <script>" in printed
    assert "Sources:\n  [1] document doc:0 <Cities>" in printed
    assert printed.count("Paris[1]") == 1


# ----------------------------------------------------------------------------- terminal IPython


@pytest.fixture
def terminal_ipython() -> Iterator[None]:
    """A running IPython shell that is no Jupyter kernel, as in ``ipython`` in a terminal."""
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()
    yield
    InteractiveShell.clear_instance()


class Typewriter(io.StringIO):
    """A terminal that notes each write with the clock's reading: which event it came with."""

    def __init__(self, clock: StepClock) -> None:
        super().__init__()
        self.clock = clock
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((self.clock.now, text))
        return super().write(text)


def notebook_text(events: list[ChatEvent]) -> str:
    """The plain text a Jupyter display of these events ends with."""
    handle = FakeHandle()
    display_module.display_stream(from_events(events), handle=handle, clock=StepClock())
    return repr(handle.updates[-1])


@pytest.mark.usefixtures("terminal_ipython")
def test_in_terminal_ipython_the_reply_is_typed_as_it_arrives() -> None:
    events = tools_and_citations()
    clock = StepClock()
    out = Typewriter(clock)
    reply = display_module.display_stream(from_events(events), file=out, clock=clock)
    assert reply == final(events)
    # The clock is read once to start and once per event: event n comes at n + 2.
    written: dict[float, str] = {}
    for at, text in out.writes:
        written[at] = written.get(at, "") + text
    for n, event in enumerate(events):
        if event.type == "content-delta":
            assert written[n + 2] == getattr(event, "text", None)
    printed = out.getvalue()
    assert printed.startswith(
        "Plan: I will look up the <weather>.\n"
        'Tool call 0: get_weather({"city": "Paris"})  [get_weather_1]\n'
        "Tool call 1: get_time({})  [get_time]\n"
        f"{TEXT}\n"
        "Citations:\n"
        '  "Paris"[1]\n'
        '  "18 degrees"[1,2]\n'
        '  "okyo "[3]\n'
        "Sources:\n"
    )
    # It ends with what a notebook shows under the text: the sources and the footer.
    shown = notebook_text(events)
    assert printed.endswith(shown[shown.index("\nSources:\n") + 1 :] + "\n")
    assert "— finish COMPLETE · tokens in 215 / out 21 · billed in 9 / out 21" in printed


@pytest.mark.usefixtures("terminal_ipython")
def test_in_terminal_ipython_thinking_is_labelled_and_the_answer_follows() -> None:
    events = list(to_iterator(from_sse_file(FIXTURES / "thinking_text.sse")))
    out = io.StringIO()
    reply = display_module.display_stream(from_events(events), file=out)
    thinking, text = reply.message.content or []
    assert isinstance(thinking, ThinkingContent) and isinstance(text, TextContent)
    lines = out.getvalue().splitlines()
    assert lines[:2] == [f"Thinking: {thinking.thinking}", text.text]
    assert lines[2].startswith("— finish COMPLETE") and len(lines) == 3


@pytest.mark.usefixtures("terminal_ipython")
def test_in_terminal_ipython_a_failing_stream_ends_with_the_error_and_raises() -> None:
    out = io.StringIO()
    with pytest.raises(ServerStreamError):
        display_module.display_stream(from_sse_file(FIXTURES / "error_mid_stream.sse"), file=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Plan: I will search the knowledge base for the refund policy")
    assert lines[1].startswith("— ServerStreamError: the server ended the stream with an error")
    assert len(lines) == 2


@pytest.mark.usefixtures("terminal_ipython")
def test_in_terminal_ipython_a_tool_call_cut_short_is_shown_incomplete() -> None:
    events = tools_and_citations()
    cut = [i for i, e in enumerate(events) if e.type == "tool-call-delta"][1] + 1
    source = reactivex.concat(
        from_events(events[:cut]), reactivex.throw(ConnectionResetError("reset by peer"))
    )
    out = io.StringIO()
    with pytest.raises(ConnectionResetError):
        display_module.display_stream(source, file=out)
    plan, call, footer = out.getvalue().splitlines()
    assert plan == "Plan: I will look up the <weather>."
    assert call == 'Tool call 0: get_weather({"city": "Par…)  [get_weather_1]'
    assert footer.startswith("— ConnectionResetError: reset by peer · ")


@pytest.mark.usefixtures("terminal_ipython")
def test_in_terminal_ipython_the_async_twin_types_the_reply_too(offline: OfflineServer) -> None:
    out = Typewriter(StepClock())

    async def main() -> ChatResponse:
        async with AsyncClient("key", base_url=offline.base_url) as client:
            stream = client.chat_stream(
                model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]
            )
            return await adisplay_stream(stream, file=out, clock=out.clock)

    reply = asyncio.run(main())
    (text,) = reply.message.content or []
    assert isinstance(text, TextContent)
    assert out.getvalue().startswith(text.text + "\n— finish COMPLETE")
    # A write per delta, as its event is read, not all at the end.
    assert len({at for at, _ in out.writes}) > 10


def ipython(*arguments: str, home: Path) -> subprocess.Popen[bytes]:
    """A terminal IPython (``ipython``, no Jupyter) in a subprocess, on this checkout."""
    environment = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    environment["IPYTHONDIR"] = str(home)  # no profile or history of the person running tests
    command = [sys.executable, "-m", "IPython", "--no-banner", "--simple-prompt"]
    return subprocess.Popen(
        [*command, "--colors=nocolor", "--HistoryManager.enabled=False", *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # only a few lines of warnings, if any: read at the end
        cwd=ROOT,
        env=environment,
    )


class PipeReader:
    """Reads a pipe on a thread, so that a test can wait for some text to have arrived."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._changed = threading.Condition()
        self.text = ""
        self.closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := os.read(self._pipe.fileno(), 4096):
            with self._changed:
                self.text += self._decoder.decode(chunk)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        with self._changed:
            self._changed.wait_for(lambda: marker in self.text or self.closed, timeout)
            assert marker in self.text, self.text
            return self.text

    def rest(self, timeout: float = 60) -> str:
        """Everything, once the pipe is closed."""
        self._thread.join(timeout)
        assert self.closed, self.text
        return self.text


# Run by `ipython -c`: the stream is held open after a few words of the answer until a line
# comes on stdin, so the test can look at the terminal mid-stream without timing anything.
HELD_STREAM = """
import sys, threading
from reactivex import operators as ops
from streamkit import Client, OfflineServer, display_stream

print("shell:", type(get_ipython()).__name__)
server = OfflineServer().start()
client = Client("offline-key", base_url=server.base_url)
go_on = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), go_on.set()), daemon=True).start()
words = []

def hold(event):
    if event.type == "content-delta" and event.text:
        words.append(event.text)
        if len(words) == 6:
            go_on.wait(60)

stream = client.chat_stream(
    model="command-a-03-2025",
    messages=[{"role": "user", "content": "Hi"}],
    thinking={"type": "enabled"},
)
reply = display_stream(stream.pipe(ops.do_action(hold)))
print("returned", reply.finish_reason)
"""


def test_a_terminal_ipython_shows_the_text_while_it_streams(tmp_path: Path) -> None:
    with ipython("-c", HELD_STREAM, home=tmp_path) as shell:
        assert shell.stdin is not None
        output = PipeReader(shell.stdout)
        try:
            so_far = output.wait_for("Offline answer")
            # The stream is held open: the answer has begun, and nothing after it is printed.
            assert so_far.startswith("shell: TerminalInteractiveShell\nThinking: The user wrote")
            assert "meanwhile." not in so_far and "— finish" not in so_far
            shell.stdin.write(b"go on\n")
            shell.stdin.flush()
            shell.wait(timeout=60)
        finally:
            shell.kill()  # when an assertion failed, or it hangs; else it has ended already
            printed = output.rest()
        assert shell.stderr is not None
        errors = shell.stderr.read().decode()
    assert shell.returncode == 0, errors
    thinking, answer, footer, returned = printed.splitlines()[1:]
    assert thinking.startswith('Thinking: The user wrote "Hi".')
    assert answer.startswith('Offline answer to "Hi": ') and answer.endswith("meanwhile.")
    assert footer.startswith("— finish COMPLETE · tokens in ") and footer.endswith(" s")
    assert returned == "returned COMPLETE"


def test_a_terminal_ipython_shows_a_stream_that_ends_a_line(tmp_path: Path) -> None:
    script = """\
from streamkit import Client, OfflineServer
server = OfflineServer().start()
client = Client("offline-key", base_url=server.base_url)
question = [{"role": "user", "content": "Tell me about Paris"}]
client.chat_stream(model="command-a-03-2025", messages=question, documents=["Paris is big."])
exit()
"""
    with ipython(home=tmp_path) as shell:
        printed, errors = shell.communicate(script.encode(), timeout=60)
    assert shell.returncode == 0, errors.decode()
    text = printed.decode()
    assert 'Here is what the documents say about "Tell me about Paris".' in text
    assert 'Citations:\n  "Paris is big"[1]\nSources:\n  [1] document doc:0: Paris is big.' in text
    assert "\n— finish COMPLETE · tokens in " in text
    assert "ChatStream" not in text and "Traceback" not in text


def test_the_live_display_through_ipythons_display_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        publisher = capturing_publisher()
        monkeypatch.setattr(shell, "display_pub", publisher)
        monkeypatch.setattr(display_module, "_kernel_shell", lambda: shell)
        events = tools_and_citations()
        display_module.display_stream(from_events(events), interval=0.0)
    finally:
        InteractiveShell.clear_instance()
    outputs = publisher.outputs
    # One output, displayed once and then only updated in place under the same id.
    ids = {output["transient"]["display_id"] for output in outputs}
    assert len(ids) == 1
    assert [output["update"] for output in outputs] == [False] + [True] * (len(outputs) - 1)
    check_final_html(outputs[-1]["data"]["text/html"])
    assert "\nParis[1] is sunny" in outputs[-1]["data"]["text/plain"]


def test_ipython_formatters_show_the_models_and_a_stream_displays_live(
    monkeypatch: pytest.MonkeyPatch, offline: OfflineServer
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        load_ipython_extension(shell)
        formatter: Any = shell.display_formatter  # IPython's formatters are untyped
        events = tools_and_citations()
        reply = final(events)
        data, _ = formatter.format(reply)
        check_final_html(data["text/html"], timing=False)
        assert "\nParis[1] is sunny" in data["text/plain"]

        calls = list(to_iterator(from_events(events).pipe(assemble_tool_calls())))
        data, _ = formatter.format(calls[0])
        assert "<code>get_weather</code>" in data["text/html"]
        assert data["text/plain"] == '0. get_weather({"city": "Paris"})  [get_weather_1]'

        citations = list(to_iterator(from_events(events).pipe(pair_citations())))
        data, _ = formatter.format(citations[1])
        assert "<mark" in data["text/html"] and "[1,2]" in data["text/html"]
        assert data["text/plain"] == (
            "1. '18 degrees' [18:28] cites document doc:0, tool get_weather_1:0"
        )

        data, _ = formatter.format(events[-1])
        assert data["text/plain"] == (
            "message-end finish COMPLETE · tokens in 215 / out 21 · billed in 9 / out 21"
        )
        assert "<code>message-end</code>" in data["text/html"]

        # Displaying a client's stream runs it live, as display_stream does.
        publisher = capturing_publisher()
        monkeypatch.setattr(shell, "display_pub", publisher)
        monkeypatch.setattr(display_module, "_kernel_shell", lambda: shell)
        with Client("sk-secret-key-1234", base_url=offline.base_url) as client:
            stream = client.chat_stream(
                model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]
            )
            formatter.format(stream)
        final_data = publisher.outputs[-1]["data"]
        assert "Offline answer" in final_data["text/html"]
        shown = "".join(str(o["data"]) for o in publisher.outputs)
        assert "sk-secret-key-1234" not in shown
    finally:
        InteractiveShell.clear_instance()


# ----------------------------------------------------------------------------- reprs


def test_every_event_type_has_a_one_line_text_and_html_repr() -> None:
    seen: set[str] = set()
    for fixture in sorted(FIXTURES.glob("*.sse")):
        recording = read_recording(fixture)
        for event in recording.events:
            seen.add(event.type)
            text = render_text(event)
            page = render_html(event)
            assert "\n" not in text and text.startswith(event.type)
            assert page is not None and f"<code>{event.type}</code>" in page
    assert {"message-start", "content-delta", "tool-call-start", "citation-start"} <= seen


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        pytest.param(
            {"type": "debug", "prompt": "<p>"}, "debug prompt of 3 characters", id="debug"
        ),
        pytest.param({"type": "error", "message": "overloaded"}, "error overloaded", id="error"),
        pytest.param({"type": "x-new", "a": 1, "b": 2}, "x-new fields a, b", id="unknown"),
    ],
)
def test_rare_and_unknown_events_render_too(payload: dict[str, Any], text: str) -> None:
    event = CHAT_EVENT_ADAPTER.validate_python(payload)
    assert render_text(event) == text
    page = render_html(event)
    assert page is not None and f"<code>{payload['type']}</code>" in page and "<p>" not in page


def test_reprs_escape_everything_that_comes_from_outside() -> None:
    hostile = "<img src=x onerror=alert(1)>\"'&"
    event = CHAT_EVENT_ADAPTER.validate_python(
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": hostile}}}}
    )
    page = render_html(event)
    assert page is not None and "<img" not in page
    reply = ChatResponse.model_validate(
        {
            "message": {
                "content": [{"type": "text", "text": hostile}],
                "tool_calls": [
                    {"id": hostile, "function": {"name": hostile, "arguments": json.dumps(hostile)}}
                ],
                "citations": [
                    {
                        "start": 0,
                        "end": 4,
                        "text": hostile[:4],
                        "sources": [
                            {"type": "document", "id": hostile, "document": {"t": hostile}}
                        ],
                    }
                ],
            }
        }
    )
    page = render_html(reply)
    assert page is not None and "<img" not in page and "onerror=alert(1)>" not in page
    assert visible_text(page).count(hostile) >= 2


def test_unknown_objects_have_no_html_and_their_usual_repr() -> None:
    assert render_html(object()) is None
    assert render_text([1, 2]) == "[1, 2]"


def test_a_recording_summarises_its_events_and_timing() -> None:
    recording = read_recording(FIXTURES / "citations_tools.sse")
    table = render_text(recording)
    assert "citation-start[0]" in table and "finish COMPLETE" in table
    page = render_html(recording)
    assert page is not None and "<code>content-delta</code>" in page


def test_ipython_shows_a_recording_as_its_summary() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        load_ipython_extension(shell)
        formatter: Any = shell.display_formatter  # IPython's formatters are untyped
        recording = read_recording(FIXTURES / "citations_tools.sse")
        data, _ = formatter.format(recording)
        assert data["text/html"] == render_html(recording)
        assert data["text/plain"] == render_text(recording)
    finally:
        InteractiveShell.clear_instance()


def test_importing_streamkit_does_not_import_ipython() -> None:
    code = "import sys, streamkit, operators; sys.exit('IPython' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.fixture(autouse=True)
def _no_leftover_shell() -> Iterator[None]:
    yield
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
