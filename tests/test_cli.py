"""The command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "streamkit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environment,
        check=False,
    )


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


def test_bad_arguments_give_one_line_and_exit_2() -> None:
    result = run("chat")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "error" in result.stderr


def test_unknown_flag_is_one_line_and_exit_2() -> None:
    result = run("chat", "hi", "--no-such-flag")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_api_errors_are_one_line_with_a_nonzero_exit() -> None:
    # A key is set, so the CLI goes to CO_API_URL: a closed port on loopback.
    result = run("chat", "hi", env={"CO_API_KEY": "k", "CO_API_URL": "http://127.0.0.1:9"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "APIConnectionError" in lines[0]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("streamkit ")
