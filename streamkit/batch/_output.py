"""Durable results: one JSON line per finished row, appended, flushed, never twice per id.

The driver alone writes (the local engine's loop, or the Ray engine's driver), so a result
that arrives twice (a Ray task retried after its actor died) is written once: the writer
keeps the ids it has and drops a second result for one of them.

Each line is written whole with one ``write`` and flushed at once, so a killed process
leaves every finished row on disk (the kernel has it); ``fsync`` runs at most every
``fsync_every`` seconds and at close, for power losses. A run killed mid-``write`` leaves
at most a partial last line: opening the file again cuts it off (that row is simply not
finished yet, and is sent again).

Parquet is written once, at the end, from the whole JSONL file (``to_parquet``): the nested
parts (``response``, ``usage``, ``output``, ``error``) are JSON strings there, since their
shapes vary from row to row.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from streamkit.batch._rows import RowId, id_key
from streamkit.errors import BatchRunError

__all__ = ["ResultWriter", "read_results", "to_parquet"]

_NESTED = ("response", "usage", "output", "error")


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The results in a batch's JSONL output, in file order (a partial last line is left out).

    Raises:
        BatchRunError: A whole line that is not a result (the file is not a batch's output).
        OSError: The file cannot be read.
    """
    results: list[dict[str, Any]] = []
    with open(path, "rb") as file:
        data = file.read()
    whole = data[: data.rfind(b"\n") + 1]
    for number, line in enumerate(whole.splitlines(), start=1):
        try:
            result = json.loads(line)
        except ValueError:
            result = None
        if not isinstance(result, dict) or "id" not in result:
            raise BatchRunError(
                f"{path}: line {number} is not a batch result; give an output file that"
                " only batch runs write"
            )
        results.append(result)
    return results


class ResultWriter:
    """Appends results to a JSONL file, one line each, each id once; resumes an existing file.

    Args:
        path: The output file; created when missing, resumed when it holds results.
        fsync_every: The most seconds between two ``fsync`` calls while writing.

    Raises:
        BatchRunError: The file holds a line that is not a result.
        OSError: The file cannot be read or written.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync_every: float = 1.0) -> None:
        self.path = Path(path)
        self._fsync_every = fsync_every
        self.finished: dict[str, dict[str, Any]] = {}
        """The results on file, by :func:`id_key`: read at open, added to as rows finish."""
        self.duplicates = 0
        """Results dropped because their id was already written."""
        if self.path.exists():
            for result in read_results(self.path):
                self.finished.setdefault(id_key(result["id"]), result)
            self._cut_partial_line()
        self._file: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._synced = time.monotonic()

    def _cut_partial_line(self) -> None:
        with open(self.path, "rb+") as file:
            data = file.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                file.truncate(end)

    def has(self, row_id: RowId) -> bool:
        """Whether a result for this id is written."""
        return id_key(row_id) in self.finished

    def write(self, result: dict[str, Any]) -> bool:
        """Append one result, unless its id is written already.

        Returns:
            True when written, False for a duplicate (dropped).
        """
        key = id_key(result["id"])
        if key in self.finished:
            self.duplicates += 1
            return False
        line = json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._file.write(line.encode("utf-8"))
        self._file.flush()
        self.finished[key] = result
        now = time.monotonic()
        if now - self._synced >= self._fsync_every:
            os.fsync(self._file.fileno())
            self._synced = now
        return True

    def close(self) -> None:
        """Flush, ``fsync`` and close the file (safe to call twice)."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _flat(key: str, value: Any) -> Any:
    if key == "id":
        return str(value)  # one column type, whether ids were numbers or strings
    if key in _NESTED and value is not None:
        return json.dumps(value, ensure_ascii=False)
    return value


def to_parquet(jsonl: str | os.PathLike[str], parquet: str | os.PathLike[str]) -> int:
    """Write a batch's JSONL results as a Parquet file (needs ``pyarrow``).

    The nested fields (``response``, ``usage``, ``output``, ``error``) become JSON strings
    and the id a string; the others keep their types. Every file has the same schema.

    Returns:
        The number of rows written.

    Raises:
        ImportError: pyarrow is not installed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    text, number = pa.string(), pa.float64()
    # One schema for every file, whichever fields happen to be all empty in this one.
    schema = pa.schema(
        [
            ("id", text),
            ("ok", pa.bool_()),
            ("text", text),
            ("finish_reason", text),
            ("usage", text),
            ("response", text),
            ("output", text),
            ("error", text),
            ("attempts", pa.int64()),
            ("time_to_first_token", number),
            ("duration", number),
            ("tokens_per_second", number),
        ]
    )
    results = read_results(jsonl)
    rows = [{name: _flat(name, result.get(name)) for name in schema.names} for result in results]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(parquet))
    return len(rows)
