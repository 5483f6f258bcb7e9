"""A batch's input: request rows, each checked and given its id before anything is sent.

A row is a dict of :meth:`streamkit.AsyncClient.chat_stream` keyword arguments plus an
optional ``id`` (a string or an integer). A row without one gets its position: the line
number in a JSONL file (blank lines count as lines and are skipped), or the 1-based
position in an iterable. So the same input gives the same ids every time, which is what
lets a run resume. Two rows with the same id are refused: the output has each id once.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from streamkit._client import AsyncClient
from streamkit.errors import BatchInputError

__all__ = ["REQUEST_FIELDS", "RowId", "Row", "id_key", "read_jsonl", "rows_from"]

RowId = str | int
"""A row's id: a string or an integer, as given in the input or taken from its position."""

REQUEST_FIELDS = frozenset(
    name for name in inspect.signature(AsyncClient.chat_stream).parameters if name != "self"
)
"""The keys a request row may have besides ``id``: ``chat_stream``'s keyword arguments."""


@dataclass(frozen=True)
class Row:
    """One request of a batch, checked."""

    id: RowId
    """The row's id: as given, or its line number / position."""
    line: int
    """Its line number in the JSONL file, or its 1-based position in an iterable."""
    request: dict[str, Any]
    """The ``chat_stream`` keyword arguments (the model filled in when it was left out)."""


def id_key(row_id: RowId) -> str:
    """A row id as one string that keeps ``1`` and ``"1"`` apart (for sets and dict keys)."""
    return json.dumps(row_id)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSONL file, parsed, with its line number.

    Raises:
        BatchInputError: A line that is not UTF-8 or not JSON (its number is in the message).
        OSError: The file cannot be read.
    """
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BatchInputError(f"line {number}: not UTF-8 text", line=number) from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except ValueError as error:
                raise BatchInputError(f"line {number}: not JSON ({error})", line=number) from None


def rows_from(
    source: Iterable[tuple[int, Any]], *, model: str | None, where: str = "line"
) -> list[Row]:
    """Check every numbered request and give it its id.

    Args:
        source: ``(line number or position, request)`` pairs.
        model: The model for rows that name none (None: such a row is refused).
        where: How the numbers are called in error messages (``"line"`` or ``"row"``).

    Returns:
        The rows, in input order.

    Raises:
        BatchInputError: The first row that is no request, or whose id is taken.
    """
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, value in source:
        row = _row(number, value, model=model, where=where)
        key = id_key(row.id)
        if key in seen:
            raise BatchInputError(
                f"{where} {number}: id {row.id!r} is already the id of {where} {seen[key]}"
                " (every row needs its own id; a row without one gets its position)",
                line=number,
            )
        seen[key] = number
        rows.append(row)
    return rows


def _row(number: int, value: Any, *, model: str | None, where: str) -> Row:
    def refuse(why: str) -> BatchInputError:
        return BatchInputError(f"{where} {number}: {why}", line=number)

    if not isinstance(value, Mapping):
        raise refuse(f"a request must be a JSON object, not {type(value).__name__}")
    request = dict(value)
    row_id = request.pop("id", number)
    if isinstance(row_id, bool) or not isinstance(row_id, str | int):
        raise refuse(f"the id must be a string or an integer, not {row_id!r}")
    unknown = sorted(set(map(str, request)) - REQUEST_FIELDS)
    if unknown:
        raise refuse(f"unknown field {unknown[0]!r} (a row holds chat_stream arguments and an id)")
    if "messages" not in request:
        raise refuse("no 'messages'")
    if request.get("model") is None:
        if model is None:
            raise refuse("no 'model' (give one in the row, or a default model)")
        request["model"] = model
    return Row(row_id, number, request)
