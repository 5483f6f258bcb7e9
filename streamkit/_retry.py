"""When to retry a chat request, and how long to wait first. Pure: no I/O, no sleeping.

A request is retried only before its first event was delivered: after that a retry would
repeat text the caller has already seen. Retried are connection failures, timeouts before
the first byte, and the statuses 429, 500, 502, 503 and 504; never another 4xx. A server's
``Retry-After`` (seconds or an HTTP date), ``retry-after-ms`` and ``x-should-retry`` are
honoured; a wait longer than ``max_wait`` raises at once rather than hanging the caller.
Otherwise the wait grows exponentially with full jitter.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy"]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses worth another try: rate limited, or a server-side failure."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, and how long to wait between tries.

    Args:
        max_retries: Retries after the first try (0 disables retrying).
        initial_delay: The first backoff ceiling, in seconds.
        max_delay: The largest backoff ceiling, in seconds.
        max_wait: The longest server-requested wait (``Retry-After``) honoured; a longer one
            makes the error raise at once.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_wait: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0-based) when the server named none."""
        ceiling = min(self.max_delay, self.initial_delay * 2.0**retry)
        jitter: float = self.random()
        return ceiling * jitter

    def delay_for_status(
        self, retry: int, status_code: int, headers: Mapping[str, str]
    ) -> float | None:
        """The wait before retrying after an HTTP status, or None to give up now.

        Args:
            retry: How many retries were made already.
            status_code: The status received.
            headers: The response headers (case-insensitive mapping, e.g. httpx.Headers).
        """
        if retry >= self.max_retries:
            return None
        should_retry = headers.get("x-should-retry", "").strip().lower()
        if should_retry == "false":
            return None
        if status_code not in RETRYABLE_STATUSES and should_retry != "true":
            return None
        requested = self.requested_wait(headers)
        if requested is None:
            return self.backoff(retry)
        if requested > self.max_wait:
            return None
        return requested

    def delay_for_transport_error(self, retry: int) -> float | None:
        """The wait before retrying after a connection failure, or None to give up now."""
        if retry >= self.max_retries:
            return None
        return self.backoff(retry)

    def requested_wait(self, headers: Mapping[str, str]) -> float | None:
        """The wait the server asked for, in seconds; None when it asked for none we can read.

        ``retry-after-ms`` wins over ``Retry-After``. A date in the past means "now". A
        negative, non-finite or unreadable value counts as no request.
        """
        millis = headers.get("retry-after-ms")
        if millis is not None:
            value = _number(millis)
            if value is not None:
                return value / 1000
        raw = headers.get("retry-after")
        if raw is None:
            return None
        seconds = _number(raw)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        return max(0.0, when.timestamp() - self.clock())


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value
