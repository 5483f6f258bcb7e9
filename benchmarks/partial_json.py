"""Partial JSON on a stream: our incremental parser against re-parsing every prefix.

``python benchmarks/partial_json.py`` prints a table. A JSON document (records with strings,
numbers, nested lists) arrives 5 characters at a time, and after each piece the value so far
is wanted, as ``operators.partial_json`` and ``tool_call_progress`` want it:

* ``streamkit`` feeds the piece to one :class:`streamkit.PartialJSONParser` and takes a
  snapshot: each character is parsed once, a snapshot copies only the open containers;
* ``pydantic-core`` re-parses the whole prefix with
  ``from_json(prefix, allow_partial="trailing-strings")``, the other way to get the same
  value (tests/test_partial_json.py checks the two agree): fast per byte, but every piece
  costs the whole prefix again, so the total grows with the square of the size;
* ``partial_json()`` and ``partial_model(Document)`` are the whole operators over
  ``content-delta`` events; ``partial_model`` validates each snapshot field by field,
  reusing the result for every finished record, but still visits each record of the open
  list once per snapshot.

Each cell is the best of ``--repeat`` runs (default 1: the pydantic-core column alone
takes tens of seconds at 100 KB). ``--quick`` runs small sizes (the smoke test uses it).

Measured on the shared 2-core development machine (2026-11-30, Python 3.11, pydantic-core
2.50.5), one run each::

      size  pieces  streamkit  pydantic-core   ratio  partial_json()  partial_model()
     13 KB   2,511       5 ms          86 ms   18.5x           13 ms           175 ms
     25 KB   5,011      13 ms         388 ms   30.9x           46 ms           268 ms
     50 KB  10,002      21 ms        1866 ms   88.0x           74 ms           939 ms
    100 KB  20,008     109 ms       22970 ms  210.8x          201 ms          4341 ms

Re-parsing grows with the square of the size (x4 per doubling, worse once the prefix
leaves the CPU cache); the incremental parser stays near-linear (its snapshot copies the
open list of records, which is what grows at 100 KB). That is why the parser is ours:
pydantic-core's partial mode is the reference it is tested against, not the engine.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: streamkit is not installed
    sys.path.insert(0, str(ROOT))

import pydantic_core  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from operators import partial_json, partial_model  # noqa: E402
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent, PartialJSONParser, from_events  # noqa: E402

PIECE = 5


class Record(BaseModel):
    """One record of the benchmark document."""

    id: int
    name: str
    score: float
    tags: list[str]


class Document(BaseModel):
    """The benchmark document: a title and many records."""

    title: str
    records: list[Record]


def make_document(size: int) -> str:
    """A JSON document of about ``size`` characters, the same for the same size."""
    records = []
    text = ""
    i = 0
    while len(text) < size:
        records.append(
            {
                "id": i,
                "name": f'record {i} "quoted" and caf\u00e9',
                "score": i * 0.25,
                "tags": [f"t{i % 7}", f"u{i % 11}"],
            }
        )
        i += 1
        if i % 50 == 0 or len(text) + 120 * 50 >= size:
            text = json.dumps({"title": "benchmark", "records": records}, ensure_ascii=False)
    return text


def pieces_of(text: str) -> list[str]:
    return [text[i : i + PIECE] for i in range(0, len(text), PIECE)]


def run_streamkit(pieces: Sequence[str]) -> object:
    parser = PartialJSONParser()
    value: object = None
    for piece in pieces:
        parser.feed(piece)
        value = parser.snapshot()
    parser.close()
    return value


def run_pydantic_core(pieces: Sequence[str]) -> object:
    prefix = ""
    value: object = None
    for piece in pieces:
        prefix += piece
        value = pydantic_core.from_json(prefix, allow_partial="trailing-strings")
    return value


def _events(pieces: Sequence[str]) -> list[ChatEvent]:
    return [
        CHAT_EVENT_ADAPTER.validate_python(
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}
        )
        for p in pieces
    ]


def run_operator(events: Sequence[ChatEvent], model: bool) -> object:
    operator = partial_model(Document) if model else partial_json()
    items: list[object] = []
    from_events(events).pipe(operator).subscribe(items.append)
    return items[-1]


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: Sequence[str] | None = None) -> list[list[str]]:
    """Run the benchmark, print its table and return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (seconds)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (best is kept)")
    args = parser.parse_args(argv)
    sizes = [2_000, 4_000] if args.quick else [12_500, 25_000, 50_000, 100_000]
    model_sizes = set(sizes)
    repeat = 1 if args.quick else args.repeat

    header = ["size", "pieces", "streamkit", "pydantic-core", "ratio", "partial_json()"]
    header.append("partial_model()")
    rows = [header]
    for size in sizes:
        text = make_document(size)
        pieces = pieces_of(text)
        events = _events(pieces)
        expected = json.loads(text)
        assert run_streamkit(pieces) == expected
        assert run_pydantic_core(pieces) == expected
        assert run_operator(events, model=False) == expected
        ours = best_of(repeat, functools.partial(run_streamkit, pieces))
        theirs = best_of(repeat, functools.partial(run_pydantic_core, pieces))
        operator = best_of(repeat, functools.partial(run_operator, events, model=False))
        model = "-"
        if size in model_sizes:
            assert run_operator(events, model=True) == Document.model_validate(expected)
            seconds = best_of(repeat, functools.partial(run_operator, events, model=True))
            model = f"{seconds * 1000:.0f} ms"
        rows.append(
            [
                f"{len(text) / 1000:.0f} KB",
                f"{len(pieces):,}",
                f"{ours * 1000:.0f} ms",
                f"{theirs * 1000:.0f} ms",
                f"{theirs / ours:.1f}x",
                f"{operator * 1000:.0f} ms",
                model,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    return rows


if __name__ == "__main__":
    main()
