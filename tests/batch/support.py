"""What the batch tests share: request rows, the offline backend's own replies, a fault server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streamkit import Client
from streamkit._replies import script_reply
from tests.scripted_server import (
    Headers,
    RecordedRequest,
    ScriptedServer,
    Step,
    json_response,
    sse_events,
)

MODEL = "command-a-03-2025"
TIMINGS = ("time_to_first_token", "duration", "tokens_per_second")


def rows(count: int, *, max_tokens: int = 8, start: int = 0) -> list[dict[str, Any]]:
    """``count`` requests with ids ``q<n>``: short replies (max_tokens) keep the tests fast."""
    return [
        {
            "id": f"q{n}",
            "model": MODEL,
            "messages": [{"role": "user", "content": f"question {n}"}],
            "max_tokens": max_tokens,
        }
        for n in range(start, start + count)
    ]


def question_of(body: Any) -> str:
    """The question a recorded request body asked (``question <n>``)."""
    return str(body["messages"][-1]["content"])


def expected_replies(requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the offline backend answers each row, asked one by one with ``Client.offline()``."""
    answers: dict[str, dict[str, Any]] = {}
    with Client.offline() as client:
        for row in requests:
            arguments = {k: v for k, v in row.items() if k != "id"}
            answers[row["id"]] = client.chat(**arguments).to_dict()
    return answers


def without_timings(result: dict[str, Any]) -> dict[str, Any]:
    """A result without what differs from run to run: timings, the server's request id."""
    kept = {k: v for k, v in result.items() if k not in TIMINGS}
    if kept["error"] is not None:
        message = re.sub(r"\(request id \w+\)", "(request id)", kept["error"]["message"])
        kept["error"] = {**kept["error"], "message": message}
    return kept


def read_lines(path: Any) -> list[dict[str, Any]]:
    """Every line of a JSONL output, each parsed (a line that does not parse fails the test)."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    assert text == "" or text.endswith("\n"), "the output ends with a partial line"
    return [json.loads(line) for line in text.splitlines()]


class FaultyBackend:
    """The offline backend's replies, except the first try of every 10th question is refused.

    Even tenths get 503, odd ones 429, both with ``Retry-After``. Every request is recorded
    with its arrival time (``server.requests[i].received_at``).
    """

    def __init__(self, retry_after: str = "0.2") -> None:
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._tries: dict[str, int] = {}
        self.refused = 0

    def __call__(self, request: RecordedRequest) -> list[Step]:
        body = request.json()
        question = question_of(body)
        number = int(question.split()[-1])
        with self._lock:
            tries = self._tries[question] = self._tries.get(question, 0) + 1
            refuse = number % 10 == 0 and tries == 1
            if refuse:
                self.refused += 1
        if refuse:
            status = 503 if number % 20 == 0 else 429
            return json_response(
                status, {"message": "try again later"}, ("Retry-After", self._retry_after)
            )
        return [Headers(), *sse_events(script_reply(body).stream_events())]


@contextmanager
def faulty_backend() -> Iterator[tuple[ScriptedServer, FaultyBackend]]:
    backend = FaultyBackend()
    with ScriptedServer(default=backend) as server:
        yield server, backend


def max_in_window(times: list[float], seconds: float) -> int:
    """The most arrivals inside any window of ``seconds`` (windows start at an arrival)."""
    ordered = sorted(times)
    most = 0
    end = 0
    for start, first in enumerate(ordered):
        while end < len(ordered) and ordered[end] < first + seconds:
            end += 1
        most = max(most, end - start)
    return most
