"""The command line's variations that need no server, run in this process through ``main``.

tests/test_cli.py runs every kind of case as a real subprocess; here are the further
variations of the same checks (each refused flag, each kind of bad file), where a subprocess
would only add the interpreter's start-up time. ``main`` prints to this process's stdout and
stderr, which ``capsys`` captures; neither is a terminal, so the output is plain.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamkit._cli import main
from tests.test_cli import BINARY, DOCUMENTS, FIXTURES, REPLAY, TOOLS


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``main`` with these arguments: the exit status, stdout and stderr."""
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as exit:  # argparse's errors
        status = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "tools.json").write_text(json.dumps(TOOLS), encoding="utf-8")
    (tmp_path / "documents.json").write_text(json.dumps(DOCUMENTS), encoding="utf-8")
    (tmp_path / "question.txt").write_text("What is the capital of France?", encoding="utf-8")
    (tmp_path / "binary.sse").write_bytes(BINARY)
    (tmp_path / "empty.sse").write_bytes(b"")
    (tmp_path / "text.sse").write_bytes(b"hello\nworld\n")
    return {path.stem: path for path in tmp_path.iterdir()} | {"dir": tmp_path}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(
            ["chat", "--replay", REPLAY, "--documents", "{documents}"],
            "streamkit: error: --documents has no effect with --replay: nothing is sent;"
            " --show citations prints the recorded citations",
            id="documents-replay",
        ),
        pytest.param(
            ["chat", "--replay", REPLAY, "--thinking"],
            "streamkit: error: --thinking has no effect with --replay: nothing is sent;"
            " --show thinking prints the recorded thinking",
            id="thinking-replay",
        ),
        pytest.param(
            ["chat", "--replay", REPLAY, "--offline"],
            "streamkit: error: --offline has no effect with --replay: nothing is sent",
            id="offline-replay",
        ),
        pytest.param(
            ["chat", "--replay", REPLAY, "--file", "{question}"],
            "streamkit: error: --file has no effect with --replay: nothing is sent",
            id="file-replay",
        ),
        pytest.param(
            ["chat", "-", "--replay", REPLAY],
            "streamkit: error: give a question or --replay FILE, not both",
            id="dash-replay",
        ),
        pytest.param(
            ["chat", "hi", "--file", "{question}"],
            "streamkit: error: give a question or --file PATH, not both",
            id="question-and-file",
        ),
        pytest.param(
            ["chat", "--replay", "{binary}"],
            "streamkit chat: error: argument --replay: {binary} is not a recording:"
            " it is binary (byte 0 is not UTF-8 text)",
            id="replay-binary",
        ),
        pytest.param(
            ["replay", "{empty}"],
            "streamkit replay: error: argument file: {empty} is not a recording:"
            " it holds no chat events",
            id="replay-empty",
        ),
        pytest.param(
            ["inspect", "{text}"],
            "streamkit inspect: error: argument file: {text} is not a recording:"
            " it holds no chat events",
            id="inspect-text",
        ),
        pytest.param(
            ["inspect", "{dir}"],
            "streamkit inspect: error: argument file: {dir} is a directory, not a file",
            id="inspect-dir",
        ),
        pytest.param(
            ["replay", "{dir}"],
            "streamkit replay: error: argument file: {dir} is a directory, not a file",
            id="replay-dir",
        ),
        pytest.param(
            ["chat", "hi", "--tools", "{dir}"],
            "streamkit chat: error: argument --tools: {dir} is a directory, not a file",
            id="tools-dir",
        ),
        pytest.param(
            ["chat", "--file", "{dir}"],
            "streamkit chat: error: argument --file: {dir} is a directory, not a file",
            id="file-dir",
        ),
        pytest.param(
            ["chat", "--file", "{dir}/missing.txt"],
            "streamkit chat: error: argument --file: no such file: {dir}/missing.txt",
            id="file-missing",
        ),
        pytest.param(
            ["chat", "--file", "{binary}"],
            "streamkit: error: {binary} is not UTF-8 text",
            id="file-binary",
        ),
        pytest.param(
            ["chat", "hi", "--documents", "{dir}/{long}"],
            "streamkit chat: error: argument --documents: cannot read {dir}/{long}:"
            " File name too long",
            id="documents-name-too-long",
        ),
    ],
)
def test_each_refusal_is_one_line_and_exit_2(
    args: list[str], line: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    names = {**files, "long": "x" * 300}
    status, out, err = cli(capsys, *(arg.format(**names) for arg in args))
    assert status == 2
    assert error_line(err) == line.format(**names) + " (see --help)"
    assert out == ""


def recording_of(path: Path, thinking: list[str], text: list[str]) -> Path:
    """A plain recorded body: thinking deltas, then text deltas, then a clean end."""

    def event(payload: dict[str, object]) -> str:
        return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n"

    def delta(index: int, content: dict[str, str]) -> str:
        message = {"content": content}
        return event({"type": "content-delta", "index": index, "delta": {"message": message}})

    message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
    body = [event({"type": "message-start", "id": "m1", "delta": {"message": message}})]
    body += [delta(0, {"thinking": piece}) for piece in thinking]
    body += [delta(1, {"text": piece}) for piece in text]
    body.append(event({"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}))
    path.write_text("".join(body) + "data: [DONE]\n\n", encoding="utf-8")
    return path


def test_plain_thinking_is_indented_so_a_blank_line_in_it_is_not_the_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lines split across deltas, a blank line inside the thinking: every line still indented.
    path = recording_of(tmp_path / "t.sse", ["First.\n", "\nSec", "ond,\nthird."], ["Answer."])
    status, out, err = cli(capsys, "replay", path, "--instant", "--show", "thinking")
    assert status == 0, err
    assert out == "Thinking:\n  First.\n\n  Second,\n  third.\n\nAnswer.\n"


def test_show_thinking_with_a_replay_prints_the_recorded_thinking(
    capsys: pytest.CaptureFixture[str],
) -> None:
    thinking = FIXTURES / "thinking_text.sse"
    status, out, err = cli(capsys, "chat", "--replay", thinking, "--instant", "--show", "thinking")
    assert status == 0, err
    assert out.startswith("Thinking:\n  The user wants the number of r's")


def test_a_recording_cut_inside_a_character_is_still_a_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only bytes that cannot be UTF-8 anywhere make a file binary: a cut recording is not.
    body = (FIXTURES / "text_plain.sse").read_bytes().split(b"data: [DONE]")[0]
    path = tmp_path / "cut.sse"
    path.write_bytes(body + b": \xe2\x98")  # the first two of the three bytes of a character
    status, out, err = cli(capsys, "inspect", path)
    assert status == 0, err
    assert "no message-end" not in out  # every event is there; only [DONE] is missing


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.sse")), ids=lambda path: path.name)
def test_every_fixture_is_a_recording(fixture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "inspect", fixture)
    assert status == 0, err
    assert " events: " in out


def test_a_recorded_request_that_failed_is_a_recording_and_replays_to_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What --record leaves when the request never got an answer: no event, but a recording.
    path = tmp_path / "failed.sse"
    path.write_text(
        ": streamkit recording 1\n: t=0.512 error APIConnectionError: could not reach it\n",
        encoding="utf-8",
    )
    status, out, err = cli(capsys, "replay", path, "--instant")
    assert status == 1
    assert error_line(err).startswith("streamkit: error: StreamTruncatedError: ")
    assert out == ""
