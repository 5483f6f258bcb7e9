"""The command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    # The short form: a bare function, wrapped by the CLI.
    {"name": "get_time", "description": "The time now"},
]
DOCUMENTS = [
    {"id": "paris", "data": {"title": "Paris", "text": "Paris is the capital of France."}},
    "Lyon is the third-largest city of France.",
]


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    result = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    # The offline backend at full speed, unless a test asks for a pace.
    result["STREAMKIT_OFFLINE_PACING"] = "0"
    result.pop("NO_COLOR", None)
    result.update(env or {})
    return result


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command; stdin is the given text, else empty (never the test runner's own)."""
    return subprocess.run(
        [sys.executable, "-m", "streamkit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environment(env),
        check=False,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command writes to stderr, after checking there is only one."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamkit"), lines[0]
    assert "error: " in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(TOOLS), encoding="utf-8")
    return path


@pytest.fixture
def documents_file(tmp_path: Path) -> Path:
    path = tmp_path / "documents.json"
    path.write_text(json.dumps(DOCUMENTS), encoding="utf-8")
    return path


def test_chat_without_a_key_streams_from_the_offline_backend() -> None:
    result = run("chat", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert "offline backend" in result.stderr
    assert "What is the capital of France?" in result.stdout
    assert result.stdout.endswith("\n")
    assert "Traceback" not in result.stderr


def test_chat_with_a_system_message_and_model() -> None:
    result = run("chat", "Hello", "--system", "Be brief.", "--model", "command-r7b-12-2024")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def closed_port() -> int:
    """A loopback port nothing listens on: bound by the test, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_server_is_named_in_one_line_with_a_hint_at_the_offline_backend() -> None:
    # A key is set, so the CLI goes to CO_API_URL: a closed port on loopback. The URL carries
    # a password and a path, the key is a secret: the line names scheme, host and port only.
    port = closed_port()
    url = f"http://user:url-secret@127.0.0.1:{port}/base"
    result = run("chat", "hi", env={"CO_API_KEY": "key-secret", "CO_API_URL": url})
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith(
        "streamkit: error: APIConnectionError: could not reach the server (ConnectError: "
    )
    assert line.endswith(
        f"; server http://127.0.0.1:{port} (from CO_API_URL): check the network and"
        " CO_API_URL, or unset CO_API_KEY to use the built-in offline backend"
    )
    assert "secret" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("streamkit ")


# ----------------------------------------------------------------------------- request flags


def test_tools_print_the_plan_and_each_call_with_its_arguments(tools_file: Path) -> None:
    result = run("chat", "What is the weather in Paris?", "--tools", str(tools_file))
    assert result.returncode == 0, result.stderr
    plan, calls = result.stdout.split("\n\n")
    assert plan.startswith("I will call get_weather and get_time")
    lines = calls.splitlines()
    assert lines[0].startswith('→ get_weather({"city": "Paris"})  [get_weather_')
    assert lines[1].startswith("→ get_time({})  [get_time_")


def test_documents_from_json_and_text_files_are_cited(documents_file: Path, tmp_path: Path) -> None:
    text_file = tmp_path / "eiffel.txt"
    text_file.write_text("The Eiffel Tower was completed in 1889.", encoding="utf-8")
    result = run(
        "chat",
        "Tell me about Paris",
        "--documents",
        str(documents_file),
        "--documents",
        str(text_file),
    )
    assert result.returncode == 0, result.stderr
    answer, citations = result.stdout.split("\n\nCitations:\n")
    assert "Paris is the capital of France" in answer
    cited = citations.splitlines()
    assert len(cited) == 3
    assert cited[0].startswith("  'Paris is the capital of France' [")
    assert cited[0].endswith("cites document paris")
    assert cited[1].endswith("cites document doc:1")
    assert cited[2].endswith("cites document eiffel.txt")


def test_thinking_comes_first_under_a_heading_then_the_answer() -> None:
    result = run("chat", "Tell me about Paris", "--thinking")
    assert result.returncode == 0, result.stderr
    thinking, answer = result.stdout.split("\n\n")
    assert thinking.startswith("Thinking:\n  The user wrote")
    assert answer.startswith("Offline answer")


def test_show_usage_adds_a_footer_and_show_tools_works_without_tools() -> None:
    result = run("chat", "Hi", "--show", "usage", "--show", "tools")
    assert result.returncode == 0, result.stderr
    footer = result.stdout.rstrip("\n").splitlines()[-1]
    assert footer.startswith("— finish COMPLETE · tokens in ")
    assert "billed in" in footer and "first token" in footer


# ----------------------------------------------------------------------------- output flags


def test_json_prints_one_parseable_event_per_line_and_nothing_else() -> None:
    result = run("chat", "What is the capital of France?", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "message-start" and events[-1]["type"] == "message-end"
    text = "".join(
        e["delta"]["message"]["content"].get("text", "")
        for e in events
        if e["type"] == "content-delta"
    )
    plain = run("chat", "What is the capital of France?")
    assert text + "\n" == plain.stdout


def test_sentences_print_one_sentence_per_line() -> None:
    result = run("chat", "What is the capital of France?", "--sentences")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert all(line == line.strip() and line[-1] in ".!?" for line in lines)
    plain = run("chat", "What is the capital of France?")
    assert " ".join(lines) == plain.stdout.strip()


def test_piped_output_is_plain_text(tools_file: Path) -> None:
    result = run("chat", "Weather?", "--tools", str(tools_file), "--thinking", "--show", "usage")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert "\r" not in result.stdout + result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_spinner_runs_on_a_terminal_stderr_until_the_first_token() -> None:
    import pty

    primary, secondary = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "streamkit", "chat", "Hi"],
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=ROOT,
        env=environment({"STREAMKIT_OFFLINE_PACING": "0.05"}),
    ) as process:
        os.close(secondary)
        assert process.stdout is not None
        first = process.stdout.read(1)
        process.send_signal(signal.SIGINT)  # no need to wait for the rest
        assert process.wait(timeout=10) == 130
        out = first + process.stdout.read()
    terminal = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        terminal += chunk
    os.close(primary)
    drawn = terminal.decode("utf-8")
    waiting, erased, after = drawn.partition("\r\x1b[K")
    assert "\r⠋ waiting for the first token… 0.0s" in waiting and erased
    assert after.strip() == "streamkit: cancelled"
    assert out.decode("utf-8").startswith("Offline")  # stdout, a pipe, stays plain
    assert "\x1b" not in out.decode("utf-8")


# ----------------------------------------------------------------------------- record, replay


def test_a_recorded_chat_replays_and_inspects(tmp_path: Path, tools_file: Path) -> None:
    path = tmp_path / "reply.sse"
    live = run(
        "chat", "Weather in Paris?", "--tools", str(tools_file), "--json", "--record", str(path)
    )
    assert live.returncode == 0, live.stderr
    assert path.read_text(encoding="utf-8").startswith(": streamkit recording 1\n: t=")

    replayed = run("replay", str(path), "--instant", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == live.stdout
    assert "offline backend" not in replayed.stderr  # no request was sent

    as_chat = run("chat", "--replay", str(path), "--speed", "100", "--show", "tools")
    assert as_chat.returncode == 0, as_chat.stderr
    assert "→ get_weather(" in as_chat.stdout

    table = run("inspect", str(path))
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["#", "t", "(s)", "+ms", "type", "detail"]
    count = len(live.stdout.splitlines())
    assert rows[count].split()[3].startswith("message-end")
    assert f"{count} events: message-start 1, tool-plan-delta" in table.stdout
    assert "finish TOOL_CALL" in table.stdout


def test_replay_of_a_failed_recording_fails_the_same_way() -> None:
    result = run("replay", str(FIXTURES / "error_mid_stream.sse"), "--instant")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "streamkit: error: ServerStreamError: the server ended the stream with an error"
        )
    )


# ----------------------------------------------------------------------------- Ctrl-C


def slow_recording(path: Path) -> Path:
    """The text_plain fixture as a recording whose tokens come two seconds apart."""
    blocks = (FIXTURES / "text_plain.sse").read_text(encoding="utf-8").split("\n\n")
    stamped = [f": t={max(0, n - 2) * 2.0:.3f}\n{block}" for n, block in enumerate(blocks) if block]
    path.write_text(": streamkit recording 1\n" + "\n\n".join(stamped) + "\n\n", encoding="utf-8")
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["chat", "Tell me a long story"], id="chat"),
        pytest.param(["chat", "Tell me a long story", "--json"], id="chat-json"),
        pytest.param(["replay", "{recording}"], id="replay"),
    ],
)
def test_ctrl_c_mid_stream_cancels_and_exits_130_keeping_the_output(
    args: list[str], tmp_path: Path
) -> None:
    # Paced so that the whole reply would take over 20 seconds: only a prompt exit passes.
    recording = slow_recording(tmp_path / "slow.sse")
    with subprocess.Popen(
        [sys.executable, "-m", "streamkit", *(a.format(recording=recording) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=environment({"STREAMKIT_OFFLINE_PACING": "0.3"}),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.read(1)  # the first token has arrived: the stream is live
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 130
        out = (first + process.stdout.read()).decode("utf-8")
        err = process.stderr.read().decode("utf-8")
    assert out.strip() and out.endswith("\n")
    assert err.splitlines()[-1] == "streamkit: cancelled"
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["chat"], "needs a question", id="no-question-empty-stdin"),
        pytest.param(["chat", "hi", "--no-such-flag"], "unrecognized", id="unknown-flag"),
        pytest.param(["chat", "hi", "--tools", "missing.json"], "no such file", id="no-tools"),
        pytest.param(["chat", "hi", "--documents", "nope.txt"], "no such file", id="no-docs"),
        pytest.param(["chat", "hi", "--tools", "README.md"], "not valid JSON", id="bad-tools"),
        pytest.param(["chat", "--replay", "nope.sse"], "no such file", id="no-replay"),
        pytest.param(["chat", "hi", "--record", "no/dir/r.sse"], "no such dir", id="no-dir"),
        pytest.param(["chat", "hi", "--show", "everything"], "invalid choice", id="bad-show"),
        pytest.param(["chat", "hi", "--json", "--sentences"], "not allowed", id="json-sentences"),
        pytest.param(["chat", "hi", "--json", "--show", "usage"], "no effect", id="json-show"),
        pytest.param(["replay", "nope.sse"], "no such file", id="replay-missing"),
        pytest.param(
            ["replay", str(FIXTURES / "text_plain.sse"), "--speed", "0"],
            "positive",
            id="speed-zero",
        ),
        pytest.param(["inspect", "nope.sse"], "no such file", id="inspect-missing"),
        pytest.param(["inspect"], "required", id="inspect-nothing"),
        pytest.param(
            ["chat", "hi", "--replay", str(FIXTURES / "text_plain.sse")], "not both", id="both"
        ),
    ],
)
def test_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and message in lines[0], result.stderr
    assert result.stdout == ""


def test_a_bad_documents_json_shape_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    path.write_text("[1, 2]", encoding="utf-8")
    result = run("chat", "hi", "--documents", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_pacing_variable_is_a_one_line_error() -> None:
    result = run("chat", "hi", env={"STREAMKIT_OFFLINE_PACING": "fast"})
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("streamkit: error: STREAMKIT_OFFLINE_PACING")
    )


# ----------------------------------------------------------------------------- the question
# Variations that need no server are in test_cli_in_process.py; each item is here at least
# once, as a real subprocess.

LONG = "Spell: " + "word " * 60_000  # 300 kB: over Linux's 128 kB limit for one argument


def text_and_billed_input(json_lines: str) -> tuple[str, int]:
    """The reply's text and the input tokens billed, from ``--json`` output."""
    events = [json.loads(line) for line in json_lines.splitlines()]
    text = "".join(
        e["delta"]["message"]["content"].get("text", "")
        for e in events
        if e["type"] == "content-delta"
    )
    assert events[-1]["type"] == "message-end"
    tokens: int = events[-1]["delta"]["usage"]["billed_units"]["input_tokens"]
    return text, tokens


@pytest.mark.parametrize("how", ["pipe", "file"])
def test_a_question_too_long_for_the_command_line_comes_from_a_pipe_or_a_file(
    how: str, tmp_path: Path
) -> None:
    question = tmp_path / "question.txt"
    question.write_text(LONG + "\n", encoding="utf-8")
    if how == "file":
        result = run("chat", "--file", str(question), "--json")
    else:
        result = run("chat", "--json", stdin=LONG + "\n")
    assert result.returncode == 0, result.stderr
    text, billed = text_and_billed_input(result.stdout)
    assert text.startswith('Offline answer to "Spell: word word')  # its start arrived...
    assert billed >= 60_000  # ... and all of it
    assert "Traceback" not in result.stderr


def test_a_dash_reads_the_question_from_stdin_without_its_final_newline() -> None:
    result = run("chat", "-", stdin="What is the capital of France?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Offline answer to "What is the capital of France?": ')


@pytest.mark.parametrize(
    ("args", "stdin", "line"),
    [
        pytest.param(["chat", "   "], None, "the question is blank", id="argument"),
        pytest.param(["chat"], "\t \n\n", "the question from stdin is blank", id="pipe"),
        pytest.param(
            ["chat", "--file", "{blank}"], None, "the question in {blank} is blank", id="file"
        ),
    ],
)
def test_a_blank_question_exits_2_before_anything_is_sent(
    args: list[str], stdin: str | None, line: str, tmp_path: Path
) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n", encoding="utf-8")
    result = run(*(a.format(blank=blank) for a in args), stdin=stdin)
    assert result.returncode == 2
    # One line: not even the offline backend's notice, so no request was made.
    assert one_error_line(result) == f"streamkit: error: {line.format(blank=blank)} (see --help)"
    assert result.stdout == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_no_question_on_a_terminal_says_so_rather_than_waiting_for_stdin() -> None:
    import pty

    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "streamkit", "chat"],
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env=environment(),
            check=False,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "streamkit: error: chat needs a question: an argument, - or a pipe for stdin,"
        " --file PATH, or --replay FILE (see --help)"
    )


# ----------------------------------------------------------------------------- refused flags

REPLAY = str(FIXTURES / "text_plain.sse")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(
            ["hi", "--speed", "2"],
            "--speed has no effect on a live chat: it paces --replay FILE",
            id="speed-live",
        ),
        pytest.param(
            ["hi", "--instant"],
            "--instant has no effect on a live chat: it paces --replay FILE",
            id="instant-live",
        ),
        pytest.param(
            ["hi", "--show", "thinking"],
            "--show thinking has no effect without --thinking: the model only thinks when asked",
            id="show-thinking-without-thinking",
        ),
        pytest.param(
            ["--replay", REPLAY, "--model", "command-r7b-12-2024"],
            "--model has no effect with --replay: nothing is sent",
            id="model-replay",
        ),
        pytest.param(
            ["--replay", REPLAY, "--system", "Be brief."],
            "--system has no effect with --replay: nothing is sent",
            id="system-replay",
        ),
        pytest.param(
            ["--replay", REPLAY, "--tools", "{tools}"],
            "--tools has no effect with --replay: nothing is sent;"
            " --show tools prints the recorded tool calls",
            id="tools-replay",
        ),
    ],
)
def test_a_flag_with_no_effect_in_the_chosen_mode_is_refused(
    args: list[str], line: str, tools_file: Path, tmp_path: Path
) -> None:
    record = tmp_path / "never.sse"
    extra = [] if "--replay" in args else ["--record", str(record)]
    result = run("chat", *(a.format(tools=tools_file) for a in args), *extra)
    assert result.returncode == 2
    assert one_error_line(result) == f"streamkit: error: {line} (see --help)"
    assert result.stdout == ""
    assert not record.exists()  # checking --record's target left nothing behind


# ----------------------------------------------------------------------------- files

BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.mark.parametrize(
    ("command", "content", "why"),
    [
        pytest.param("replay", BINARY, "it is binary (byte 0 is not UTF-8 text)", id="replay"),
        pytest.param("inspect", BINARY, "it is binary (byte 0 is not UTF-8 text)", id="inspect"),
        pytest.param(
            # The decoder also logs a warning, which would be a second line if printed.
            "inspect",
            b'data: {"type": "message-start", broken\n\n',
            "no chat event could be read from it (MalformedEventError)",
            id="malformed",
        ),
    ],
)
def test_a_file_that_is_not_a_recording_is_refused_in_one_line(
    command: str, content: bytes, why: str, tmp_path: Path
) -> None:
    path = tmp_path / "garbage.sse"
    path.write_bytes(content)
    result = run(command, str(path))
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"streamkit {command}: error: argument file: {path} is not a recording: {why} (see --help)"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(
            ["chat", "hi", "--documents", "{dir}"],
            "streamkit chat: error: argument --documents: {dir} is a directory, not a file",
            id="documents-dir",
        ),
        pytest.param(
            ["chat", "hi", "--record", "{dir}"],
            "streamkit chat: error: argument --record: {dir} is a directory;"
            " give a file to record to",
            id="record-dir",
        ),
        pytest.param(
            # A name no file system takes: a target even root cannot write.
            ["chat", "hi", "--record", "{dir}/{long}.sse"],
            "streamkit chat: error: argument --record: cannot write {dir}/{long}.sse:"
            " File name too long",
            id="record-unwritable",
        ),
    ],
)
def test_paths_are_checked_before_anything_is_sent(
    args: list[str], line: str, tmp_path: Path
) -> None:
    names = {"dir": tmp_path, "long": "x" * 300}
    result = run(*(a.format(**names) for a in args))
    assert result.returncode == 2
    # One line: not even the offline backend's notice, so no request was made.
    assert one_error_line(result) == line.format(**names) + " (see --help)"
    assert result.stdout == ""


def test_a_record_target_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    # Under a regular file, not a directory: unwritable even for root (CI runs as root).
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run("chat", "hi", "--record", str(blocker / "r.sse"))
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"streamkit chat: error: argument --record: no such directory for {blocker / 'r.sse'}"
        " (see --help)"
    )


def test_a_co_api_url_that_is_no_url_is_a_usage_error() -> None:
    result = run("chat", "hi", env={"CO_API_KEY": "k", "CO_API_URL": "127.0.0.1:9"})
    assert result.returncode == 2
    assert one_error_line(result) == (
        "streamkit: error: CO_API_URL: base_url '127.0.0.1:9' must be an http:// or https://"
        " URL with a host, e.g. 'https://api.cohere.com'"
    )


# ----------------------------------------------------------------------------- --schema

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "sights": {"type": "array", "items": {"$ref": "#/$defs/Sight"}},
    },
    "required": ["city", "sights"],
    "$defs": {
        "Sight": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "kind": {"enum": ["museum", "park"]}},
            "required": ["name", "kind"],
        }
    },
}


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA), encoding="utf-8")
    return path


def test_schema_prints_the_whole_object_on_a_pipe(schema_file: Path) -> None:
    result = run("chat", "--schema", str(schema_file), "A guide to Rome")
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["city"] == "Rome"
    assert value["sights"] and all(s["kind"] == "museum" for s in value["sights"])
    assert result.stdout.startswith("{\n  ")  # pretty-printed, once


def test_schema_json_prints_growing_snapshots_one_per_line(schema_file: Path) -> None:
    result = run("chat", "--schema", str(schema_file), "--json", "A guide to Rome")
    assert result.returncode == 0, result.stderr
    snapshots = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(snapshots) > 5
    assert snapshots[0] == {}
    assert snapshots[-1] == snapshots[-2]  # the last line is the whole object
    for old, new in zip(snapshots, snapshots[1:], strict=False):
        assert set(old) <= set(new)


def test_schema_redraws_the_object_in_place_on_a_terminal(schema_file: Path) -> None:
    import pty

    primary, secondary = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "streamkit", "chat", "--schema", str(schema_file), "Rome"],
        stdout=secondary,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=environment(),
    ) as process:
        os.close(secondary)
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            drawn += chunk
        assert process.wait(timeout=30) == 0
    os.close(primary)
    text = drawn.decode("utf-8").replace("\r\n", "\n")
    # Each snapshot goes back up over the last one's lines, erases them and draws itself.
    ups = re.findall(r"\x1b\[(\d+)F\x1b\[J", text)
    assert len(ups) > 5
    drawings = re.split(r"\x1b\[\d+F\x1b\[J", text)
    for drawing, up in zip(drawings, ups, strict=False):
        assert drawing.count("\n") == int(up)  # exactly the lines drawn before
    assert json.loads(drawings[-1])["city"] == "Rome"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("[1, 2]", "a JSON schema is a JSON object", id="not-an-object"),
        pytest.param('{"type": "array"}', "needs an object at the top", id="array-schema"),
        pytest.param("{nope", "is not valid JSON", id="invalid-json"),
    ],
)
def test_a_bad_schema_file_is_one_line_and_status_2(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "schema.json"
    path.write_text(content, encoding="utf-8")
    result = run("chat", "--schema", str(path), "Hi")
    assert result.returncode == 2
    assert message in one_error_line(result)
    assert result.stdout == ""


def test_schema_refuses_tools_and_sentences(schema_file: Path, tools_file: Path) -> None:
    for extra in (["--tools", str(tools_file)], ["--sentences"]):
        result = run("chat", "--schema", str(schema_file), *extra, "Hi")
        assert result.returncode == 2
        assert "--schema" in one_error_line(result)
