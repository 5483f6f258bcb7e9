"""``streamkit batch``, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamkit import OfflineServer
from tests.batch.support import question_of, read_lines, rows
from tests.test_cli import ROOT, environment, one_error_line, run


def write_rows(path: Path, count: int, **options: int) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(count, **options)), "utf-8")
    return path


def test_without_a_key_it_runs_on_the_offline_backend_and_says_so(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.jsonl", 50)
    out = tmp_path / "out.jsonl"
    result = run("batch", str(source), "--out", str(out), "--concurrency", "8")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "CO_API_KEY is not set; answering from the built-in offline backend" in lines[0]
    assert lines[-1].startswith("streamkit: batch: 50 ok, 0 failed, first token p50 ")
    assert "tokens in 9150 / out 400" in lines[-1]
    assert sorted(r["id"] for r in read_lines(out)) == sorted(f"q{n}" for n in range(50))


def test_failed_rows_are_finished_rows_status_0(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"messages": [{"role": "user", "content": "Hi"}]}\n'
        '{"messages": [{"role": "bogus", "content": "Hi"}]}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = run("batch", str(source), "--out", str(out), "--model", "command-r")
    assert result.returncode == 0, result.stderr
    assert "1 ok, 1 failed" in result.stderr
    ok, failed = sorted(read_lines(out), key=lambda r: r["id"])
    assert (ok["id"], ok["ok"], failed["id"], failed["ok"]) == (1, True, 2, False)
    assert failed["error"]["type"] == "BadRequestError"


def test_an_unreadable_line_is_status_2_naming_it(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.jsonl", 3)
    source.write_text(source.read_text("utf-8") + "{oops\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run("batch", str(source), "--out", str(out))
    assert result.returncode == 2
    assert "line 4: not JSON" in one_error_line(result)
    assert not out.exists() or out.read_text("utf-8") == ""  # nothing was sent


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        pytest.param(["--concurrency", "0"], "--concurrency: must be a whole number", id="conc"),
        pytest.param(["--rpm", "-5"], "--rpm: must be a positive number", id="rpm"),
        pytest.param(["--engine", "spark"], "invalid choice: 'spark'", id="engine"),
        pytest.param(["--actors", "2"], "--actors has no effect without --engine ray", id="actors"),
    ],
)
def test_bad_arguments_are_status_2(tmp_path: Path, arguments: list[str], match: str) -> None:
    source = write_rows(tmp_path / "in.jsonl", 1)
    result = run("batch", str(source), "--out", str(tmp_path / "out.jsonl"), *arguments)
    assert result.returncode == 2
    assert match in one_error_line(result)


def test_a_missing_input_or_out_is_status_2(tmp_path: Path) -> None:
    missing = run("batch", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert missing.returncode == 2 and "no such file" in one_error_line(missing)
    source = write_rows(tmp_path / "in.jsonl", 1)
    no_out = run("batch", str(source))
    assert no_out.returncode == 2 and "--out" in one_error_line(no_out)


def test_an_output_that_is_no_batch_output_fails_the_run_status_1(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    out.write_text("my notes\n", encoding="utf-8")
    result = run("batch", str(source), "--out", str(out))
    assert result.returncode == 1
    assert "BatchRunError" in result.stderr and "line 1 is not a batch result" in result.stderr
    assert out.read_text(encoding="utf-8") == "my notes\n"


def test_killed_half_way_then_run_again_asks_only_for_the_unfinished_rows(
    tmp_path: Path,
) -> None:
    source = write_rows(tmp_path / "in.jsonl", 200, max_tokens=20)
    out = tmp_path / "out.jsonl"
    # 20-token replies at 10 ms an event, 10 at a time: about five seconds for the lot.
    with OfflineServer(pacing=0.01) as server:
        env = environment({"CO_API_KEY": "test-key", "CO_API_URL": server.base_url})
        command = [
            sys.executable,
            "-m",
            "streamkit",
            "batch",
            str(source),
            "--out",
            str(out),
            "--concurrency",
            "10",
        ]
        first = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 80:
                break
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        # Requests the killed run sent may still be arriving: wait for the count to settle.
        count = -1
        while count != len(server.requests):
            count = len(server.requests)
            time.sleep(0.3)
        finished = {r["id"] for r in read_lines_allowing_a_cut(out)}
        assert 80 <= len(finished) < 200

        second = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        asked = [question_of(r.body) for r in server.requests[count:]]

    assert second.returncode == 0, second.stderr
    assert f"{200 - len(finished)} ok, 0 failed, {len(finished)} already done" in second.stderr
    expected = sorted(f"question {n}" for n in range(200) if f"q{n}" not in finished)
    assert sorted(asked) == expected  # each unfinished row once, no finished row again
    lines = read_lines(out)  # every line whole
    assert sorted(r["id"] for r in lines) == sorted(f"q{n}" for n in range(200))
    assert all(r["ok"] for r in lines)


def read_lines_allowing_a_cut(path: Path) -> list[dict[str, object]]:
    """The whole lines of a killed run's output (its last line may be cut off)."""
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def test_on_a_terminal_stderr_shows_progress_then_the_summary(tmp_path: Path) -> None:
    import pty

    source = write_rows(tmp_path / "in.jsonl", 40, max_tokens=20)
    main, terminal = pty.openpty()
    env = environment({"STREAMKIT_OFFLINE_PACING": "0.01"})
    command = [
        sys.executable,
        "-m",
        "streamkit",
        "batch",
        str(source),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--concurrency",
        "4",
    ]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    ) as process:
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed: the command exited
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(30) == 0
    os.close(main)
    text = shown.decode("utf-8")
    frames = re.findall(r"(\d+)/40 done · 0 failed · (\d) in flight · \d+ tokens/s", text)
    assert len(frames) > 2 and any(int(done) > 0 for done, _ in frames)
    assert all(int(in_flight) <= 4 for _, in_flight in frames)
    assert "\r\x1b[K" in text  # each redraw starts from the line's start, erased
    last = text.rstrip().splitlines()[-1]
    assert "streamkit: batch: 40 ok, 0 failed, first token p50 " in last
