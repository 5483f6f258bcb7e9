"""``streamkit serve``, run as a real subprocess on a free loopback port."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from streamkit import OfflineServer
from tests.test_cli import ROOT, environment, one_error_line, run

pytest.importorskip("starlette")

KEY = "co-abcdefghijklmnopqrstuvwxyz0123456789"
CHAT = {
    "id": "chat-1",
    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
    "trigger": "submit-message",
}


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """``streamkit serve --port 0``: the process, its base URL and its stderr lines so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environment(env),
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        while not lines or "serving on" not in lines[-1]:
            line = process.stderr.readline()
            assert line, f"streamkit serve exited: {''.join(lines)}"
            lines.append(line)
        found = re.search(r"http://127\.0\.0\.1:\d+", lines[-1])
        assert found is not None, lines
        yield process, found.group(), lines
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_answers_the_page_and_chat_then_stops_cleanly(stop: signal.Signals) -> None:
    with serving() as (process, base_url, lines), httpx.Client(base_url=base_url) as http:
        page = http.get("/")
        info = http.get("/api/info").json()
        reply = http.post("/api/chat", json=CHAT)
        with http.stream("POST", "/api/chat", json=CHAT) as streaming:
            next(streaming.iter_lines())  # a reply under way when the signal comes
            process.send_signal(stop)
            started = time.monotonic()
            _, stderr = process.communicate(timeout=10)
    assert "offline backend" in lines[0]
    assert page.status_code == 200 and 'name="prompt"' in page.text
    assert info["backend"] == "offline"
    assert '"type":"text-delta"' in reply.text and reply.text.endswith("data: [DONE]\n\n")
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < 5
    assert "Traceback" not in stderr


def test_serve_with_a_key_asks_co_api_url_and_never_shows_the_key() -> None:
    with OfflineServer() as upstream:
        env = {"CO_API_KEY": KEY, "CO_API_URL": upstream.base_url}
        with serving("--model", "my-model", env=env) as (process, base_url, lines):
            with httpx.Client(base_url=base_url) as http:
                responses = [http.get("/"), http.get("/api/info")]
                responses.append(http.post("/api/chat", json=CHAT))
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
        (request,) = upstream.requests
    assert json.loads(responses[1].text) == {
        "backend": "cohere",
        "model": "my-model",
        "version": json.loads(responses[1].text)["version"],
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "my-model"
    assert "CO_API_URL" in lines[0]
    for text in [*(r.text for r in responses), *lines, stderr]:
        assert KEY not in text
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["--port", "70000"], {}, "0 to 65535", id="bad-port"),
        pytest.param(["--port", "x"], {}, "0 to 65535", id="port-not-a-number"),
        pytest.param(
            [], {"CO_API_KEY": KEY, "CO_API_URL": "ftp://x"}, "CO_API_URL", id="bad-api-url"
        ),
    ],
)
def test_serve_refuses_bad_arguments_in_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = run("serve", *args, env=env)
    assert result.returncode == 2
    assert message in one_error_line(result)
    assert KEY not in result.stderr


def test_serve_without_the_web_extra_names_it() -> None:
    hide = (
        "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None; "
        "from streamkit._cli import main; sys.exit(main(['serve', '--port', '0']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environment(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'cohere-streamkit[web]'" in one_error_line(result)


def test_serve_on_a_taken_port_is_one_line_and_status_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run("serve", "--port", port)
    assert result.returncode == 1
    notice, error = result.stderr.strip().splitlines()  # the backend notice, then the error
    assert "offline backend" in notice
    assert error.startswith("streamkit: error: ")
    assert f"cannot listen on 127.0.0.1:{port}" in error
