"""The driver: read the rows, skip the finished ones, run an engine, write, count, summarise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from streamkit._offline import OfflineServer
from streamkit.batch._local import run_local
from streamkit.batch._output import ResultWriter, to_parquet
from streamkit.batch._rows import Row, id_key, read_jsonl, rows_from
from streamkit.batch._runner import ClientSettings, Pipeline
from streamkit.batch._summary import BatchProgress, BatchSummary, percentile

__all__ = ["read_requests", "run_batch"]

Engine = Literal["local", "ray"]


def read_requests(
    requests: Iterable[Mapping[str, Any]] | str | os.PathLike[str], *, model: str | None = None
) -> list[Row]:
    """Check a batch's requests and give each its id, before anything is sent.

    Args:
        requests: Request dicts (``chat_stream`` arguments plus an optional ``id``), or the
            path of a JSONL file of them (one per line; blank lines are skipped).
        model: The model for rows that name none.

    Returns:
        The rows in input order. A row without an ``id`` gets its line number (in a file)
        or its 1-based position (in an iterable).

    Raises:
        BatchInputError: A row that is not a request, or whose id another row has; the
            message names its line (or position).
        OSError: The file cannot be read.
    """
    if isinstance(requests, str | os.PathLike):
        return rows_from(read_jsonl(requests), model=model, where="line")
    return rows_from(enumerate(requests, start=1), model=model, where="row")


def _tokens(result: Mapping[str, Any], name: str) -> int:
    usage = result.get("usage") or {}
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    value = counts.get(name)
    return int(value) if isinstance(value, int | float) else 0


class _Tally:
    """Counts results as they come, for progress and the summary; writes them if asked."""

    def __init__(
        self,
        total: int,
        skipped: int,
        writer: ResultWriter | None,
        on_progress: Callable[[BatchProgress], None] | None,
    ) -> None:
        self.progress = BatchProgress(total=total, skipped=skipped)
        self._writer = writer
        self._on_progress = on_progress
        self._start = time.monotonic()
        self.results: dict[str, dict[str, Any]] = {}
        self.duplicates = 0

    def started(self, row: Row) -> None:  # noqa: ARG002 - counted, not kept
        self.progress.in_flight += 1
        self._report()

    def duplicate(self, result: dict[str, Any]) -> None:  # noqa: ARG002 - counted, not kept
        self.duplicates += 1
        self._report()

    def finished(self, result: dict[str, Any]) -> None:
        key = id_key(result["id"])
        self.progress.in_flight -= 1
        if key in self.results or (self._writer is not None and not self._writer.write(result)):
            self.duplicates += 1
            self._report()
            return
        self.results[key] = result
        if result["ok"]:
            self.progress.ok += 1
        else:
            self.progress.failed += 1
        self.progress.output_tokens += _tokens(result, "output_tokens")
        self._report()

    def _report(self) -> None:
        self.progress.elapsed = time.monotonic() - self._start
        if self._on_progress is not None:
            self._on_progress(self.progress)

    def summary(self, rows: list[Row]) -> BatchSummary:
        ordered = [self.results[k] for row in rows if (k := id_key(row.id)) in self.results]
        ttfts = [r["time_to_first_token"] for r in ordered if r["time_to_first_token"] is not None]
        return BatchSummary(
            total=self.progress.total,
            skipped=self.progress.skipped,
            ok=self.progress.ok,
            failed=self.progress.failed,
            duplicates=self.duplicates,
            input_tokens=sum(_tokens(r, "input_tokens") for r in ordered),
            output_tokens=sum(_tokens(r, "output_tokens") for r in ordered),
            ttft_p50=percentile(ttfts, 0.5),
            ttft_p99=percentile(ttfts, 0.99),
            elapsed=time.monotonic() - self._start,
            results=ordered,
        )


@contextlib.contextmanager
def _backend(
    offline: bool, base_url: str | None, api_key: str | None, pacing: float
) -> Iterator[tuple[str | None, str | None]]:
    if not offline:
        yield base_url, api_key
        return
    with OfflineServer(pacing=pacing) as server:
        yield server.base_url, "offline"


def run_batch(
    requests: Iterable[Mapping[str, Any]] | Sequence[Row] | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    engine: Engine = "local",
    model: str | None = None,
    concurrency: int = 32,
    rpm: float | None = None,
    tpm: float | None = None,
    pipeline: Pipeline | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    offline: bool = False,
    offline_pacing: float = 0.0,
    timeout: float | None = 300.0,
    max_retries: int = 2,
    actors: int | None = None,
    parquet: str | os.PathLike[str] | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> BatchSummary:
    """Run many chat requests, each streamed once, and keep one result per request.

    Every row's request goes through ``chat_stream`` (and ``pipeline``, if given). A
    request that fails before its first event is retried as the client retries (429 and
    5xx, honouring ``Retry-After``, up to ``max_retries``); a row that still fails is
    recorded as failed, never dropped. Each result is a dict:

    ``id``; ``ok``; ``text`` (the reply's text, or the partial text of a failed row);
    ``finish_reason``; ``usage``; ``response`` (the final message as Cohere's non-streaming
    reply, :meth:`ChatResponse.to_dict`); ``output`` (the pipeline's values, or None);
    ``error`` (None, or ``type``, ``message`` and ``status_code`` when there was one);
    ``attempts``; and the timings ``time_to_first_token``, ``duration`` (seconds from the
    last attempt's request) and ``tokens_per_second``.

    With ``out``, each result is appended to that JSONL file as its row finishes. Running
    again with the same ``out`` resumes: rows already in the file are not sent again.

    Example:
        >>> from streamkit.batch import run_batch
        >>> rows = [{"messages": [{"role": "user", "content": f"Q{n}"}]} for n in range(3)]
        >>> summary = run_batch(rows, model="command-a-03-2025", offline=True)
        >>> summary.ok, [r["id"] for r in summary.results]
        (3, [1, 2, 3])

    Args:
        requests: Request dicts (``chat_stream`` arguments plus an optional ``id``), or a
            JSONL file of them, or the rows :func:`read_requests` made of either. Rows
            without an id get their line number (file) or 1-based position (iterable).
        out: A JSONL file for the results; resumed when it exists.
        engine: ``"local"`` (one asyncio loop) or ``"ray"`` (Ray Data ``map_batches`` over
            async actors; needs the ``ray`` extra; joins ``RAY_ADDRESS`` or starts a local
            Ray).
        model: The model for rows that name none.
        concurrency: Streams in flight at once, over all workers.
        rpm: Requests per minute, over all workers (retries count); None for no limit.
        tpm: Tokens per minute (input and output), over all workers; None for no limit.
        pipeline: An operator applied to each row's events; its values land in ``output``.
        api_key: The API key; defaults to ``CO_API_KEY``.
        base_url: The API root; defaults to ``CO_API_URL`` or Cohere's.
        offline: Answer from a built-in :class:`~streamkit.OfflineServer` started for the run.
        offline_pacing: Seconds between the offline backend's events.
        timeout: Seconds for connecting and for each read (None: no limit).
        max_retries: Retries of a request that failed before its first event.
        actors: Ray Data's actor pool size (default: one per CPU of the cluster, at most
            concurrency).
        parquet: Also write every result of ``out`` to this Parquet file at the end
            (needs pyarrow; nested fields become JSON strings). Requires ``out``.
        on_progress: Called after each row starts or finishes, with the counts so far.

    Returns:
        The run's :class:`BatchSummary`, with this run's results in input order.

    Raises:
        BatchInputError: A row is not a request (nothing is sent).
        BatchRunError: ``out`` holds lines that are not results, or Ray failed (a worker
            that cannot import streamkit, a lost cluster).
        ValueError: A bad argument (concurrency below 1, parquet without out, ...).
        ImportError: ``engine="ray"`` without Ray installed, or ``parquet`` without pyarrow.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be 1 or more, not {concurrency!r}")
    for name, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and not limit > 0:
            raise ValueError(f"{name} must be a positive number or None, not {limit!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', not {engine!r}")
    if parquet is not None and out is None:
        raise ValueError("parquet= is written from the JSONL output: give out= too")
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be 1 or more, not {actors!r}")
    if isinstance(requests, list) and requests and all(isinstance(r, Row) for r in requests):
        rows: list[Row] = requests
    else:
        rows = read_requests(requests, model=model)  # type: ignore[arg-type]
    writer = ResultWriter(out) if out is not None else None
    try:
        todo = [row for row in rows if writer is None or not writer.has(row.id)]
        tally = _Tally(len(rows), len(rows) - len(todo), writer, on_progress)
        with _backend(offline, base_url, api_key, offline_pacing) as (url, key):
            settings = ClientSettings(
                base_url=url,
                api_key=key if key is not None else os.environ.get("CO_API_KEY"),
                timeout=timeout,
                max_retries=max_retries,
                # As Client.offline(): the backend is on loopback, no proxy applies to it.
                trust_env=not offline,
            )
            settings.client()  # a missing key or a bad base_url fails here, before any row
            if engine == "local":
                asyncio.run(
                    run_local(
                        todo,
                        settings=settings,
                        concurrency=concurrency,
                        rpm=rpm,
                        tpm=tpm,
                        pipeline=pipeline,
                        on_start=tally.started,
                        on_result=tally.finished,
                    )
                )
            else:
                try:
                    from streamkit.batch._ray import run_ray
                except ImportError as error:
                    raise ImportError(
                        "engine='ray' needs Ray: pip install 'cohere-streamkit[ray]'"
                    ) from error

                run_ray(
                    todo,
                    settings=settings,
                    concurrency=concurrency,
                    rpm=rpm,
                    tpm=tpm,
                    pipeline=pipeline,
                    actors=actors,
                    on_start=tally.started,
                    on_result=tally.finished,
                    on_duplicate=tally.duplicate,
                )
    finally:
        if writer is not None:
            writer.close()
    if parquet is not None and out is not None:
        to_parquet(Path(out), Path(parquet))
    return tally.summary(rows)
