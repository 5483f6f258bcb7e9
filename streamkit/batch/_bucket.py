"""A token bucket: pure, no clock of its own, no sleeping.

The caller says what time it is. :meth:`TokenBucket.wait_time` says how long until an
amount is there; :meth:`TokenBucket.take` takes it. A caller takes only when the wait is
zero, and otherwise asks again after the wait, so the bucket never grants ahead of time: a
caller that wakes up late (a busy event loop) finds at most ``capacity`` saved up, never a
backlog, and cannot burst. :meth:`TokenBucket.take` also settles an estimate once the real
cost is known (a request's tokens are known only after its reply): the balance may go below
zero, and a negative amount gives back, up to the capacity.

Over any window of ``T`` seconds, amounts (each at most ``capacity``) taken inside it add
up to at most ``capacity + rate * T``. The local engine drives the buckets on its asyncio
loop; the Ray engine drives the same class inside one actor that every worker asks, so the
limit is global.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]

_EPSILON = 1e-9


class TokenBucket:
    """Refills at ``rate`` per second, up to ``capacity``.

    Example:
        >>> bucket = TokenBucket(rate=2.0, capacity=1.0, now=0.0)
        >>> bucket.wait_time(1, now=0.0)
        0.0
        >>> bucket.take(1, now=0.0)
        >>> bucket.wait_time(1, now=0.0), bucket.wait_time(1, now=0.25)
        (0.5, 0.25)

    Args:
        rate: Units added per second (``rpm / 60`` for requests per minute).
        capacity: The most units that can be saved up while idle (the largest burst).
        now: The current time, in seconds on the caller's clock.

    Raises:
        ValueError: If ``rate`` or ``capacity`` is not a positive number.
    """

    __slots__ = ("_balance", "_capacity", "_rate", "_updated")

    def __init__(self, rate: float, capacity: float, *, now: float) -> None:
        if not rate > 0 or not capacity > 0:
            raise ValueError(f"rate and capacity must be positive, got {rate!r} and {capacity!r}")
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._balance = float(capacity)
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            elapsed = now - self._updated
            self._balance = min(self._capacity, self._balance + elapsed * self._rate)
            self._updated = now

    def wait_time(self, amount: float, *, now: float) -> float:
        """Seconds until ``amount`` can be taken (an amount above the capacity: a full bucket).

        Args:
            amount: The units wanted.
            now: The current time on the caller's clock.

        Returns:
            0.0 when it can be taken now.
        """
        self._refill(now)
        missing = min(amount, self._capacity) - self._balance
        # A rounding error's worth missing is nothing: else a caller that waited exactly as
        # told could be told to wait a few nanoseconds more, again and again.
        return missing / self._rate if missing > _EPSILON else 0.0

    def take(self, amount: float, *, now: float) -> None:
        """Take ``amount`` (the balance may go below zero), or give back a negative one.

        Args:
            amount: The units taken; negative to return units (up to the capacity).
            now: The current time on the caller's clock.
        """
        self._refill(now)
        self._balance = min(self._capacity, self._balance - amount)
