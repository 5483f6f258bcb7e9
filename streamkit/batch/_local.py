"""The local engine: every row on one asyncio loop, on the native transport.

At most ``concurrency`` rows stream at once; the rate limits are two
:class:`~streamkit.batch._bucket.TokenBucket` objects on the same loop. Each result goes to
``on_result`` (the driver's writer) as soon as its row finishes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from streamkit._retry import RetryPolicy
from streamkit.batch._bucket import TokenBucket
from streamkit.batch._rows import Row
from streamkit.batch._runner import ClientSettings, Limits, NoLimits, Pipeline, run_row

__all__ = ["BucketLimits", "make_buckets", "run_local"]


def make_buckets(
    rpm: float | None, tpm: float | None, *, now: float
) -> tuple[TokenBucket | None, TokenBucket | None]:
    """The request and token buckets for per-minute limits (None where there is no limit).

    Requests are spaced evenly (a burst of one); tokens may burst one second's worth.
    """
    requests = TokenBucket(rpm / 60, 1.0, now=now) if rpm else None
    tokens = TokenBucket(tpm / 60, max(1.0, tpm / 60), now=now) if tpm else None
    return requests, tokens


class BucketLimits:
    """Per-minute limits kept in this process, on a monotonic clock.

    Args:
        rpm: Requests per minute, or None.
        tpm: Tokens per minute (input and output), or None.
        clock: Seconds on a monotonic clock.
    """

    def __init__(
        self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._requests, self._tokens = make_buckets(rpm, tpm, now=clock())

    def try_acquire(self, tokens: int) -> float:
        """Take one request of ``tokens`` tokens if both buckets allow it now.

        Returns:
            0.0 when taken; otherwise the seconds to wait before asking again (nothing taken).
        """
        now = self._clock()
        wanted = [(b, a) for b, a in ((self._requests, 1), (self._tokens, tokens)) if b]
        wait = max((bucket.wait_time(amount, now=now) for bucket, amount in wanted), default=0.0)
        if wait == 0.0:
            for bucket, amount in wanted:
                bucket.take(amount, now=now)
        return wait

    def charge(self, tokens: int) -> None:
        """Settle a request with the tokens its reply really used (minus the estimate)."""
        if self._tokens is not None:
            self._tokens.take(tokens, now=self._clock())

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent, and take it."""
        while (wait := self.try_acquire(tokens)) > 0:
            await asyncio.sleep(wait)

    async def settle(self, tokens: int) -> None:
        """Correct the estimate once the reply's usage is known."""
        self.charge(tokens)


async def run_local(
    rows: Iterable[Row],
    *,
    settings: ClientSettings,
    concurrency: int,
    rpm: float | None,
    tpm: float | None,
    pipeline: Pipeline | None,
    on_start: Callable[[Row], None],
    on_result: Callable[[dict[str, Any]], None],
) -> None:
    """Run the rows, ``concurrency`` at a time, handing each result to ``on_result``.

    An exception from ``on_result`` (the output's disk is full) stops the run and is raised.
    """
    limits: Limits = BucketLimits(rpm, tpm) if rpm or tpm else NoLimits()
    retry = RetryPolicy(max_retries=settings.max_retries)
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    client = settings.client(connections=concurrency)
    try:

        async def one(row: Row) -> None:
            try:
                result = await run_row(client, row, limits=limits, retry=retry, pipeline=pipeline)
            finally:
                slots.release()
            on_result(result)

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        try:
            for row in rows:
                await slots.acquire()
                if failures:
                    raise failures[0]
                on_start(row)
                task = asyncio.create_task(one(row), name=f"streamkit-batch-{row.id}")
                tasks.add(task)
                task.add_done_callback(done)
            while tasks:
                await asyncio.wait(set(tasks))
            if failures:
                raise failures[0]
        finally:
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.wait(set(tasks))
    finally:
        await client.transport.aclose()
