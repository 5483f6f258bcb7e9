"""What a run did, counted as it goes: progress while it runs, a summary at the end. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchProgress", "BatchSummary", "percentile"]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` 0.5 for p50, 0.99 for p99); None if empty.

    Example:
        >>> percentile([0.3, 0.1, 0.2, 0.4], 0.5), percentile([0.3, 0.1, 0.2, 0.4], 0.99)
        (0.2, 0.4)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class BatchProgress:
    """How far a run is: handed to ``on_progress`` after every row that starts or finishes."""

    total: int
    """Rows in the input."""
    skipped: int
    """Rows finished by an earlier run into the same output (not sent again)."""
    ok: int = 0
    """Rows of this run that finished with a reply."""
    failed: int = 0
    """Rows of this run recorded as failed."""
    in_flight: int = 0
    """Rows started and not finished (streaming, waiting for a limit or a retry)."""
    output_tokens: int = 0
    """Output tokens of the replies so far."""
    elapsed: float = 0.0
    """Seconds since the run started."""

    @property
    def done(self) -> int:
        """Rows finished, this run's and earlier runs'."""
        return self.skipped + self.ok + self.failed

    @property
    def tokens_per_second(self) -> float:
        """Output tokens per second of this run, over all its streams."""
        return self.output_tokens / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class BatchSummary:
    """What a finished run did.

    Results are in :attr:`results` (this run's rows, in input order) and, with ``out=``,
    in the output file (every run's rows).
    """

    total: int
    """Rows in the input."""
    skipped: int
    """Rows an earlier run had finished (not sent again)."""
    ok: int
    """Rows of this run that finished with a reply."""
    failed: int
    """Rows of this run recorded as failed."""
    duplicates: int
    """Results dropped because their row was already written (a retried Ray task)."""
    input_tokens: int
    """Input tokens of this run's replies, as their usage reports."""
    output_tokens: int
    """Output tokens of this run's replies."""
    ttft_p50: float | None
    """Median seconds to the first token, over this run's rows that got one."""
    ttft_p99: float | None
    """99th percentile of the seconds to the first token."""
    elapsed: float
    """Seconds the run took."""
    results: list[dict[str, Any]] = field(repr=False)
    """This run's results, in input order."""

    @property
    def rows_per_second(self) -> float:
        """This run's finished rows per second."""
        return (self.ok + self.failed) / self.elapsed if self.elapsed > 0 else 0.0

    def describe(self) -> str:
        """The summary as one line, as ``streamkit batch`` prints it."""

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}s"

        parts = [f"{self.ok} ok", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        parts += [
            f"first token p50 {seconds(self.ttft_p50)} p99 {seconds(self.ttft_p99)}",
            f"tokens in {self.input_tokens} / out {self.output_tokens}",
            f"{self.elapsed:.1f}s",
        ]
        return ", ".join(parts)
