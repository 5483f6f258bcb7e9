"""The Ray engine: async Ray actors, each running many streams, fed row chunks by the driver.

This is plain Ray (actors and ``ray.wait``), not Ray Data: the driver keeps the rows, hands
each actor chunks of them (two chunks outstanding per actor, so it never idles between
chunks), and writes each chunk's results as it comes back. That keeps the one writer, and
so the dedup by id, in the driver. An actor that dies (killed, its node lost) fails its
outstanding calls with ``RayActorError``: their rows go back to the front of the queue and
a new actor takes its place; a row whose result did arrive is never written twice.

The rate limits live in one more actor, :class:`_Limiter`, which holds the same
:class:`~streamkit.batch._bucket.TokenBucket` objects the local engine uses: every worker
asks it before each request (retries included), and asks again after the wait it is told,
so the limits hold across the cluster.

Ray is imported here only, and this module only when ``engine="ray"`` is asked for.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from streamkit._retry import RetryPolicy
from streamkit.batch._local import BucketLimits
from streamkit.batch._rows import Row
from streamkit.batch._runner import ClientSettings, Limits, NoLimits, Pipeline, run_row
from streamkit.errors import BatchRunError

__all__ = ["ACTOR_PREFIX", "run_ray"]

ACTOR_PREFIX = "streamkit-batch-"
"""Every actor of a run is named ``streamkit-batch-<run>-<role><n>`` (``ray list actors``)."""

_OUTSTANDING = 2  # chunks per actor: one streaming, one queued behind it


class _Limiter:
    """The rate limits of a whole run, shared by its workers (one actor)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self._limits = BucketLimits(rpm, tpm)

    def try_acquire(self, tokens: int) -> float:
        return self._limits.try_acquire(tokens)

    def charge(self, tokens: int) -> None:
        self._limits.charge(tokens)


class _RemoteLimits:
    """Limits kept by a :class:`_Limiter` actor: ask it, then wait as long as it says."""

    def __init__(self, limiter: Any) -> None:
        self._limiter = limiter

    async def acquire(self, tokens: int) -> None:
        while (wait := await self._limiter.try_acquire.remote(tokens)) > 0:
            await asyncio.sleep(wait)

    async def settle(self, tokens: int) -> None:
        if tokens:
            await self._limiter.charge.remote(tokens)


class _Worker:
    """One actor: a client and up to ``concurrency`` streams, for every chunk it is given."""

    def __init__(
        self,
        settings: ClientSettings,
        concurrency: int,
        limiter: Any | None,
        pipeline: Pipeline | None,
    ) -> None:
        self._settings = settings
        self._concurrency = concurrency
        self._limits: Limits = _RemoteLimits(limiter) if limiter is not None else NoLimits()
        self._pipeline = pipeline
        self._retry = RetryPolicy(max_retries=settings.max_retries)
        self._state: tuple[Any, asyncio.Semaphore] | None = None

    async def run(self, rows: list[Row]) -> list[dict[str, Any]]:
        if self._state is None:  # made on the actor's own loop
            client = self._settings.client(connections=self._concurrency)
            self._state = (client, asyncio.Semaphore(self._concurrency))
        client, slots = self._state

        async def one(row: Row) -> dict[str, Any]:
            async with slots:
                return await run_row(
                    client, row, limits=self._limits, retry=self._retry, pipeline=self._pipeline
                )

        return list(await asyncio.gather(*(one(row) for row in rows)))

    def pid(self) -> int:
        return os.getpid()


def _cpus() -> int:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


def run_ray(
    rows: Sequence[Row],
    *,
    settings: ClientSettings,
    concurrency: int,
    rpm: float | None,
    tpm: float | None,
    pipeline: Pipeline | None,
    actors: int | None,
    on_start: Callable[[Row], None],
    on_result: Callable[[dict[str, Any]], None],
    on_lost: Callable[[Row], None],
) -> None:
    """Run the rows on Ray actors, handing each result to ``on_result`` in the driver.

    Joins the cluster at ``RAY_ADDRESS`` (or starts a local Ray) when Ray is not running
    yet, and shuts down only a Ray it started.

    Raises:
        BatchRunError: Actors kept dying (more replacements than ``2 * actors + 2``), or
            Ray failed otherwise (a worker that cannot import streamkit, a lost cluster).
    """
    if not rows:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or None,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    run = uuid.uuid4().hex[:8]
    actors_made: list[Any] = []
    try:
        count = min(actors or _cpus(), concurrency, max(1, len(rows)))
        per_actor = math.ceil(concurrency / count)
        limiter = None
        if rpm or tpm:
            limiter = (
                ray.remote(_Limiter)
                .options(name=f"{ACTOR_PREFIX}{run}-limiter", num_cpus=0)
                .remote(rpm, tpm)
            )
            actors_made.append(limiter)
        worker_class = ray.remote(_Worker)
        made = 0

        def new_worker() -> Any:
            nonlocal made
            made += 1
            worker = worker_class.options(
                name=f"{ACTOR_PREFIX}{run}-worker{made}",
                max_concurrency=_OUTSTANDING + 1,
                num_cpus=0,
            ).remote(settings, per_actor, limiter, pipeline)
            actors_made.append(worker)
            return worker

        workers = [new_worker() for _ in range(count)]
        queue = deque(rows)
        calls: dict[Any, tuple[int, Any, list[Row]]] = {}
        load = [0] * count
        while queue or calls:
            for slot in range(count):
                while queue and load[slot] < _OUTSTANDING:
                    chunk = [queue.popleft() for _ in range(min(per_actor, len(queue)))]
                    for row in chunk:
                        on_start(row)
                    calls[workers[slot].run.remote(chunk)] = (slot, workers[slot], chunk)
                    load[slot] += 1
            ready, _ = ray.wait(list(calls), num_returns=1)
            for ref in ready:
                slot, worker, chunk = calls.pop(ref)
                if worker is workers[slot]:  # not a dead actor's call: it was replaced
                    load[slot] -= 1
                try:
                    results = ray.get(ref)
                except RayActorError:
                    for row in chunk:
                        on_lost(row)
                    queue.extendleft(reversed(chunk))
                    if made >= 3 * count + 2:
                        raise BatchRunError(
                            f"Ray actors died {made - count} times; the rows written so far"
                            " are kept: run again with the same output to resume"
                        ) from None
                    if worker is workers[slot]:
                        ray.kill(worker)
                        workers[slot] = new_worker()
                        load[slot] = 0
                    # The dead actor's other calls fail too; they come back through ray.wait.
                    continue
                for result in results:
                    on_result(result)
    except RayError as error:
        # Anything else Ray reports (a worker that cannot import streamkit, a lost
        # cluster) ends the run; what was written stays written.
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise BatchRunError(f"the Ray engine failed: {type(error).__name__}: {summary}") from error
    finally:
        for actor in actors_made:  # a Ray that lives on keeps no idle actors of this run
            ray.kill(actor)
        if started:
            ray.shutdown()
