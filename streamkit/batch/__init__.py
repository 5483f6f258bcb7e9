"""Run thousands of chat streams as a batch: every row once, retried, rate-limited, resumable.

::

    from streamkit.batch import run_batch

    summary = run_batch("questions.jsonl", out="answers.jsonl", model="command-a-03-2025",
                        concurrency=64, rpm=1000)
    print(summary.describe())

Each request row streams through ``chat_stream`` (and an optional operator pipeline), and
gives one result: the final message, finish reason, usage, time to first token, duration
and tokens per second, or the typed error of a row that failed. Results go to a JSONL file
as rows finish; running again with the same output sends only the rows not finished.

Two engines run the same rows to the same results: ``engine="local"`` (one asyncio loop on
the native transport; no extra dependency) and ``engine="ray"`` (Ray Data ``map_batches``
over async actors, each running many streams, with the rate limits kept by one shared
actor; ``pip install 'cohere-streamkit[ray]'``). ``import streamkit.batch`` never imports
Ray.
"""

from streamkit.batch._bucket import TokenBucket
from streamkit.batch._output import read_results, to_parquet
from streamkit.batch._rows import REQUEST_FIELDS, Row, RowId
from streamkit.batch._run import read_requests, run_batch
from streamkit.batch._summary import BatchProgress, BatchSummary

__all__ = [
    "REQUEST_FIELDS",
    "BatchProgress",
    "BatchSummary",
    "Row",
    "RowId",
    "TokenBucket",
    "read_requests",
    "read_results",
    "run_batch",
    "to_parquet",
]
