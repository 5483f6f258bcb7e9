"""The Ray engine: Ray Data ``map_batches`` over async actors, each running many streams.

The rows become a Ray Dataset (``ray.data.from_items``, each row pickled into one binary
column, so Arrow never has to infer a schema for free-form requests), cut into blocks of
``batch_size`` rows. ``map_batches`` runs :class:`_Streams`, an async callable class, on
a fixed pool of ``actors`` actors (``ActorPoolStrategy``): its ``async __call__`` runs
every row of a batch at once through :func:`~streamkit.batch._runner.run_row` (the local
engine's code), on the actor's event loop, under the actor's own cap of
``concurrency / actors`` streams; each actor takes a few batches at a time, so the cap
stays full while a batch's last, slow rows finish.

The driver iterates the result as a stream (``iter_rows``: Ray Data's streaming
execution; results arrive as batches finish, in no particular order) and hands each
result to ``on_result``, the driver's durable writer, which keeps each id once. An actor
that dies mid-batch is restarted by Ray and its unfinished batches are run again (Ray
Data's actors have ``max_restarts=-1`` and ``max_task_retries=-1`` by default): a row of
a re-run batch whose result was already written is dropped as a duplicate.

The rate limits live in one more actor, :class:`_Limiter`, which holds the same
:class:`~streamkit.batch._bucket.TokenBucket` objects the local engine uses: every
worker asks it before each request (retries included), and asks again after the wait it
is told, so the limits hold across the cluster.

Ray is imported here only, and this module only when ``engine="ray"`` is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import ray
import ray.data
from ray.data.exceptions import SystemException
from ray.exceptions import RayError

from streamkit._retry import RetryPolicy
from streamkit.batch._local import BucketLimits
from streamkit.batch._rows import Row, id_key
from streamkit.batch._runner import ClientSettings, Limits, NoLimits, Pipeline, run_row
from streamkit.errors import BatchRunError

__all__ = ["ACTOR_PREFIX", "WORKER_CLASS", "run_ray"]

ACTOR_PREFIX = "streamkit-batch-"
"""The limiter actor of a run is named ``streamkit-batch-<run>-limiter`` (``ray list actors``)."""

_CALLS_PER_ACTOR = 4  # batches an actor runs at once (each half its stream cap: no idle tail)


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


class _Streams:
    """Ray Data's callable class: one per actor, a client and up to ``concurrency`` streams."""

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

    async def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        if self._state is None:  # made on the loop Ray Data runs async batches on
            client = self._settings.client(connections=self._concurrency)
            self._state = (client, asyncio.Semaphore(self._concurrency))
        client, slots = self._state

        async def one(data: bytes) -> bytes:
            row: Row = pickle.loads(data)  # noqa: S301 - the driver pickled it for us
            async with slots:
                result = await run_row(
                    client, row, limits=self._limits, retry=self._retry, pipeline=self._pipeline
                )
            return pickle.dumps(result)

        results = await asyncio.gather(*(one(bytes(data)) for data in batch["row"]))
        return {"result": np.array(results, dtype=object)}


WORKER_CLASS = f"MapWorker(MapBatches({_Streams.__name__}))"
"""The class name Ray's state API gives the engine's actors (Ray Data names them so)."""


def _cpus() -> int:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's INFO and WARNING lines (execution started/finished, no progress bars) off."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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
    on_duplicate: Callable[[dict[str, Any]], None],
) -> None:
    """Run the rows through Ray Data on async actors, handing each result to ``on_result``.

    Joins the cluster at ``RAY_ADDRESS`` (or starts a local Ray) when Ray is not running
    yet, and shuts down only a Ray it started.

    The driver cannot see a row start on an actor: ``on_start`` is called for the first
    ``concurrency`` rows, then for one more row per result, so "in flight" counts the
    streams the actors may run, an upper bound until their pool has started. A second
    result for a row (a batch run again after its actor died) goes to ``on_duplicate``.

    Raises:
        BatchRunError: Ray failed (a worker that cannot import streamkit, a lost cluster).
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
    limiter: Any = None
    try:
        count = min(actors or _cpus(), concurrency, len(rows))
        per_actor = math.ceil(concurrency / count)
        batch_size = max(1, per_actor // 2)
        if rpm or tpm:
            name = f"{ACTOR_PREFIX}{uuid.uuid4().hex[:8]}-limiter"
            limiter = ray.remote(_Limiter).options(name=name, num_cpus=0).remote(rpm, tpm)
        items = [{"row": pickle.dumps(row)} for row in rows]
        dataset = ray.data.from_items(
            items, override_num_blocks=math.ceil(len(items) / batch_size)
        ).map_batches(
            _Streams,
            fn_constructor_args=(settings, per_actor, limiter, pipeline),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                size=count,
                max_tasks_in_flight_per_actor=_CALLS_PER_ACTOR,
                max_concurrent_calls_per_actor=_CALLS_PER_ACTOR,
            ),
            num_cpus=0,  # streams wait on the network: actors need no CPU of their own
        )
        context = dataset.context  # this dataset's own copy: the process's stays as it was
        context.enable_progress_bars = False
        context.enable_operator_progress_bars = False
        context.print_on_execution_start = False
        waiting = deque(rows)
        for _ in range(min(concurrency, len(waiting))):
            on_start(waiting.popleft())
        seen: set[str] = set()
        with _quiet_ray_data():
            for item in dataset.iter_rows():
                result: dict[str, Any] = pickle.loads(item["result"])  # noqa: S301 - ours
                key = id_key(result["id"])
                if key in seen:
                    on_duplicate(result)
                    continue
                seen.add(key)
                on_result(result)
                if waiting:
                    on_start(waiting.popleft())
    except (RayError, SystemException) as error:
        # Anything Ray reports (a worker that cannot import streamkit, a lost cluster)
        # ends the run; what was written stays written.
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise BatchRunError(f"the Ray engine failed: {type(error).__name__}: {summary}") from error
    finally:
        if limiter is not None:  # a Ray that lives on keeps no idle actor of this run
            ray.kill(limiter)
        if started:
            ray.shutdown()
