"""One row, start to end: wait for the limits, stream, retry by the client's rules, report.

Both engines run every row through :func:`run_row`, so a row gives the same result on
either. Retries are made here rather than inside the client (each request is sent with
``max_retries=0``), with the client's :class:`~streamkit._retry.RetryPolicy`: the same
statuses (429, 5xx), the same ``Retry-After`` handling, never after the first event. Doing
them here lets every attempt, retries included, pass through the rate limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel
from reactivex import Observable
from reactivex.subject import Subject

from streamkit._accumulate import MessageAccumulator
from streamkit._client import AsyncClient
from streamkit._events import ChatEvent
from streamkit._message import ChatResponse
from streamkit._native import NativeTransport
from streamkit._retry import RetryPolicy
from streamkit._stats import StreamStatsTracker
from streamkit.batch._rows import Row
from streamkit.errors import APIConnectionError, APIStatusError, StreamError

__all__ = ["ClientSettings", "Limits", "NoLimits", "Pipeline", "estimate_tokens", "run_row"]

Pipeline = Callable[[Observable[ChatEvent]], Observable[Any]]
"""An operator (or ``pipe`` of operators) applied to each row's events; its values are kept."""


class Limits(Protocol):
    """Where a row waits for its turn under the rate limits, and reports what it cost."""

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent."""

    async def settle(self, tokens: int) -> None:
        """Correct the estimate: the request cost ``tokens`` more (or fewer, if negative)."""


class NoLimits:
    """No rate limits: every request may go at once."""

    async def acquire(self, tokens: int) -> None:  # noqa: ARG002 - nothing to wait for
        """Return at once."""

    async def settle(self, tokens: int) -> None:  # noqa: ARG002 - nothing to count
        """Do nothing."""


@dataclass(frozen=True)
class ClientSettings:
    """How a worker makes its client: picklable, so Ray actors can make theirs."""

    base_url: str | None
    api_key: str | None
    timeout: float | None
    max_retries: int
    trust_env: bool = True
    """Whether proxy variables apply; False for the offline backend, which is on loopback."""

    def __repr__(self) -> str:  # the key stays out of every repr, log line and error
        return f"ClientSettings(base_url={self.base_url!r}, max_retries={self.max_retries})"

    def client(self, connections: int = 20) -> AsyncClient:
        """An AsyncClient on the native transport that does not retry by itself.

        Args:
            connections: Idle connections kept per host (as many as streams in flight,
                so that each request reuses one).

        Raises:
            MissingAPIKeyError: No key given and no ``CO_API_KEY``.
            ValueError: A base URL that is no http(s) URL.
        """
        transport = NativeTransport(
            timeout=self.timeout, max_idle_per_origin=connections, trust_env=self.trust_env
        )
        return AsyncClient(self.api_key, base_url=self.base_url, max_retries=0, transport=transport)


def estimate_tokens(request: dict[str, Any]) -> int:
    """A request's tokens, guessed before sending it: its text's length / 4, plus max_tokens.

    The tokens-per-minute limit reserves this much, then settles on the reply's usage.
    """
    size = len(str(request.get("messages", ""))) + len(str(request.get("documents") or ""))
    max_tokens = request.get("max_tokens")
    return size // 4 + 1 + (max_tokens if isinstance(max_tokens, int) else 0)


def _used_tokens(response: ChatResponse | None) -> int | None:
    usage = response.usage if response is not None else None
    if usage is None:
        return None
    counts = usage.tokens if usage.tokens is not None else usage.billed_units
    if counts is None:
        return None
    return int((counts.input_tokens or 0) + (counts.output_tokens or 0))


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    return value


async def run_row(
    client: AsyncClient,
    row: Row,
    *,
    limits: Limits,
    retry: RetryPolicy,
    pipeline: Pipeline | None,
) -> dict[str, Any]:
    """Send one row's request (retrying as the client would) and describe how it went.

    Returns:
        The row's result (see :func:`streamkit.batch.run_batch` for its fields); a failure is
        a result too, never an exception.
    """
    estimate = estimate_tokens(row.request)
    options = dict(row.request.get("request_options") or {})
    options["max_retries"] = 0
    arguments = {**row.request, "request_options": options}
    attempt = 0
    while True:
        await limits.acquire(estimate)
        attempt += 1
        outcome = await _attempt(client, arguments, pipeline)
        error = outcome.error
        delay: float | None = None
        if isinstance(error, APIStatusError):
            delay = retry.delay_for_status(attempt - 1, error.status_code, error.headers)
        elif isinstance(error, APIConnectionError):
            delay = retry.delay_for_transport_error(attempt - 1)
        used = _used_tokens(outcome.response)
        await limits.settle((used if used is not None else 0) - estimate)
        if error is None or delay is None:
            return outcome.result(row, attempt)
        await asyncio.sleep(delay)


@dataclass
class _Outcome:
    response: ChatResponse | None
    error: Exception | None
    stats: StreamStatsTracker
    duration: float
    output: list[Any] | None

    def result(self, row: Row, attempts: int) -> dict[str, Any]:
        stats = self.stats.stats(end=self.duration)
        response = self.response
        error_info: dict[str, Any] | None = None
        if self.error is not None:
            error_info = {"type": type(self.error).__name__, "message": str(self.error)}
            status = getattr(self.error, "status_code", None)
            if isinstance(status, int):
                error_info["status_code"] = status
        return {
            "id": row.id,
            "ok": self.error is None,
            "text": response.text if response is not None else "",
            "finish_reason": response.finish_reason if response is not None else None,
            "usage": _jsonable(response.usage) if response and response.usage else None,
            "response": response.to_dict() if response is not None else None,
            "output": self.output,
            "error": error_info,
            "attempts": attempts,
            "time_to_first_token": stats.time_to_first_token,
            "duration": self.duration,
            "tokens_per_second": stats.tokens_per_second,
        }


async def _attempt(
    client: AsyncClient, arguments: dict[str, Any], pipeline: Pipeline | None
) -> _Outcome:
    """One request: its events folded into the reply, timed, and fed to the pipeline."""
    accumulator = MessageAccumulator(strict=False)
    stats = StreamStatsTracker()
    output: list[Any] | None = None
    failure: list[Exception] = []
    subject: Subject[ChatEvent] | None = None
    if pipeline is not None:
        output = []
        subject = Subject()
        pipeline(subject).subscribe(
            on_next=lambda value: output.append(_jsonable(value)),
            on_error=failure.append,
        )
    start = time.monotonic()
    events = 0
    error: Exception | None = None
    try:
        stream = client.chat_stream(**arguments)
        async for event in stream.aiterate():
            events += 1
            stats.add(time.monotonic() - start, event)
            accumulator.add(event)
            if subject is not None:
                subject.on_next(event)
        if subject is not None:
            subject.on_completed()
    except Exception as caught:  # every failure becomes the row's error, never the run's
        error = caught
    duration = time.monotonic() - start
    if error is None and failure:
        error = failure[0]
    response: ChatResponse | None = None
    if isinstance(error, StreamError) and error.partial_message is not None:
        response = error.partial_message
    elif events:
        response = accumulator.snapshot()
    return _Outcome(response, error, stats, duration, output)
